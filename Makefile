# Two commands do everything on a fresh Debian machine: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/smsbot intents train  # fill the model cache once, so every start is fast
	touch $(STAMP)

## run the service with the zero-setup defaults (memory store, sandbox provider, demo data)
run: $(STAMP)
	$(BIN)/smsbot serve --demo

## lint, type-check and run the whole test suite (installs what the tests need)
test: $(STAMP) lint typecheck
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/classify.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
