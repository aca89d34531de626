# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv, installs the project, runs examples/quickstart.yaml
#   make test   creates .venv, installs the project, runs ruff and the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install ui clean

install: $(STAMP)

# torch==2.13.0 first where that wheel is available (a CPU build on CPU machines); the
# project itself asks for torch>=2.6, so elsewhere pip picks the platform's own build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0 \
		|| echo "torch==2.13.0 is not available here; installing the project's torch>=2.6"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sweeps launch examples/quickstart.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

ui: $(STAMP)
	$(BIN)/sweeps ui quickstart

clean:
	rm -rf runs .pytest_cache
