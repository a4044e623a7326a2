# The two commands a new user needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist workers. Most tests wait on sockets and timers rather than compute, so
# four workers keep two cores busy; `make test TEST_WORKERS=0` runs in one process.
# Bytecode is written even where the environment says not to: the tests start the
# gateway in a new interpreter dozens of times, and each would compile it again.
TEST_WORKERS ?= 4

.PHONY: run test bench lint clean chromium screenshots

# pip speaks for itself here (no -q): a first install downloads for about a minute.
$(VENV)/.installed: pyproject.toml
	@echo "make: creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: updating pip"
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip
	@echo "make: installing the gateway and its development tools into $(VENV)"
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@
	@echo "make: $(VENV) is ready"

run: $(VENV)/.installed
	$(BIN)/python -m gateway.demo $(if $(AT),-- '$(AT)')

# The console's browser tests drive Debian's chromium through Playwright; Playwright never
# downloads a browser of its own. Installed quietly (as root, or with sudo) when missing.
CHROMIUM := /usr/bin/chromium

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "make: installing Debian's chromium for the console's browser tests"; \
	  sudo=""; [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"; \
	  $$sudo apt-get install -y -q chromium >/dev/null 2>&1 \
	    || { $$sudo apt-get update -q >/dev/null 2>&1 \
	         && $$sudo apt-get install -y -q chromium >/dev/null 2>&1; }; \
	  [ -x $(CHROMIUM) ] || { echo "make: could not install chromium (apt-get install chromium)" >&2; exit 1; }; \
	fi

test: $(VENV)/.installed chromium
	$(BIN)/ruff check gateway tests bench examples
	$(BIN)/ruff format --check gateway tests bench examples
	$(BIN)/mypy
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

# Pictures of the console's main pages for docs/console/ (a test gateway, headless chromium).
screenshots: $(VENV)/.installed chromium
	$(BIN)/python -m tests.console.screenshots docs/console

bench: $(VENV)/.installed
	bash bench/run

clean:
	rm -rf $(VENV) var certs/dev bench/results
