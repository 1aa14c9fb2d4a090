# Two commands do everything on a fresh machine (each installs what is missing first):
#   make demo   - the offline demo: `dvc repro` of the whole pipeline
#   make test   - the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: demo test install

demo: install
	@start=$$(date +%s) && dvc repro && echo "make demo: dvc repro took $$(( $$(date +%s) - start )) s"

test: install
	python -m pytest

install: $(VENV)/installed

$(VENV)/installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@
