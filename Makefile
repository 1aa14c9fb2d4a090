# Two commands do everything on a fresh machine (each installs what is missing first):
#   make demo   - the offline demo: `dvc repro` of the whole pipeline
#   make test   - the test suite (and headless Chromium for its browser test, as root)
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: demo test install browser

demo: install
	@start=$$(date +%s) && dvc repro && echo "make demo: dvc repro took $$(( $$(date +%s) - start )) s"

test: install browser
	python -m pytest

# Headless Chromium for tests/test_browser.py (summary.html at 1,400 px): Debian's package,
# installed as root only, a no-op when one is on PATH; without one those tests skip.
BROWSERS := chromium-headless-shell chromium chromium-browser google-chrome
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make browser: installing chromium-headless-shell (apt)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium-headless-shell >/dev/null; } \
	  || echo "make browser: apt-get failed: tests/test_browser.py will skip"; \
	else echo "make browser: no Chromium and not root: tests/test_browser.py will skip"; fi

install: $(VENV)/installed

$(VENV)/installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@
