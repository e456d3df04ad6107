# The two set-up commands of README.md: `make demo` and `make test`.
# Both create the virtual environment .venv (with the project installed) when there is none.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test test-all lint dry-run clean-demo

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

## Generate the synthetic demo cohort and run the workflow end to end (results/).
demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES) --profile config/profiles/local

## Lint (ruff, snakefmt), then the fast test suite.
test: lint
	$(BIN)/python -m pytest

## Run every test, the slow ones too.
test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -m "slow or not slow"

## ruff (pyflakes, pycodestyle, import order, bugbear, complexity), snakefmt, snakemake's own lint.
lint: $(VENV)/.installed
	$(BIN)/ruff check connex tests workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

dry-run: $(VENV)/.installed
	$(BIN)/snakemake --dry-run --cores $(CORES)

clean-demo:
	rm -rf results
