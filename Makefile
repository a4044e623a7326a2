# The two commands a new user needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist workers. Most tests wait on sockets and timers rather than compute, so
# four workers keep two cores busy; `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 4

.PHONY: run test bench lint clean

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

test: $(VENV)/.installed
	$(BIN)/ruff check gateway tests bench examples
	$(BIN)/ruff format --check gateway tests bench examples
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

bench: $(VENV)/.installed
	bash bench/run

clean:
	rm -rf $(VENV) var certs/dev bench/results
