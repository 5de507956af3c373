# LossLab: `make run` sets up and starts the app; `make test` sets up and runs every check.
# The virtual environment is (re)installed only when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install

.PHONY: run test test-fast lint bench setup clean wheel-check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, by exact version: that one installs from the local CPU wheel.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/losslab

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# PYTHONDONTWRITEBYTECODE= : keep compiled modules and pytest's rewritten test modules cached
# (some machines set it; without the caches every worker spends ~5 s more compiling)
test: lint
	PYTHONDONTWRITEBYTECODE= QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

# while working: everything but the tests marked slow, still on every core
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder -m "not slow"

# LossLab as users install it: sdist + wheel, the wheel in a fresh venv (pinned), its commands
wheel-check: $(STAMP)
	bash .ci/wheel-check

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
