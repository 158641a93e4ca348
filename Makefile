# One-command entry points. Each target sets up .venv first when it is missing or stale,
# so `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: setup test demo bench bench-full lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,dicom]'
	@touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/aaclip-med demo --out $(DEMO_OUT)

bench: setup
	$(BIN)/python benchmarks/run_all.py

bench-full: setup
	$(BIN)/python benchmarks/run_all.py --full

lint: setup
	$(BIN)/ruff check aaclip_med tests benchmarks

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
