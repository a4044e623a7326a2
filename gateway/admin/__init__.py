"""The admin API and its command-line client: operators change suspensions and grants
on every worker and replica at once, and every change is audited."""
