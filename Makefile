# The two commands a new user needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/python -m gateway.demo $(if $(AT),--at $(AT))

test: $(VENV)/.installed
	$(BIN)/ruff check gateway tests bench examples
	$(BIN)/ruff format --check gateway tests bench examples
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(VENV)/.installed
	bash bench/run

clean:
	rm -rf $(VENV) var certs/dev bench/results
