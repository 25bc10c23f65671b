# mailgate: `make run` starts the daemon on the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The demo needs the runtime dependencies only; the test tools (Playwright, Hypothesis,
# ruff, schemathesis) come with the `test` extra, which includes them.
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(RUNTIME_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/mailgate serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/smtp_ingest.py

# The fault suite's long form (as root, for the full-disk tmpfs): FAULT_TRIALS kill -9
# trials per database, minutes-long outages, a 5-minute soak.
FAULT_TRIALS ?= 20
faults: $(STAMP)
	$(BIN)/python -m tests.faults --long --trials $(FAULT_TRIALS) --database both

clean:
	rm -rf $(VENV) var .pytest_cache
