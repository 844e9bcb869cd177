# lrkit: the two commands of the README, plus their set-up.
#   make demo   the whole method on the bundled pair, report in runs/demo/report.html
#   make test   every test, notebooks and the JupyterLab check included (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lrkit-installed

.PHONY: demo test test-fast calibrate install browser clean

install: $(STAMP)

# torch is installed only when missing, so an existing torch (Colab, CUDA builds) is kept.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the page and JupyterLab tests"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(BIN)/lrkit demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -m "" -q

# The bundled pairs' calibration (expert within bounds, amateur <= half); see data/*/CARD.md.
calibrate: $(STAMP)
	$(BIN)/python -m pytest -m calibration -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
