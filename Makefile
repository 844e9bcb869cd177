# lrkit: the two commands of the README, plus their set-up.
#   make demo   the whole method on the bundled pair, report in runs/demo/report.html
#   make test   every test, notebooks and the JupyterLab check included (what CI runs);
#               it installs Debian's chromium with apt-get when no Chromium is found
#               (BROWSER=no: it does not, and the two browser tests skip, saying why)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lrkit-installed
BROWSER ?= yes
SUDO := $$( [ "$$(id -u)" = 0 ] || echo sudo )

.PHONY: demo test test-fast calibrate install browser clean

install: $(STAMP)

# torch is installed only when missing: where $(PYTHON) has one (a CUDA build, Colab's, a
# conda or venv torch), the venv sees that interpreter's site-packages (a .pth file, as
# --system-site-packages would, venvs included) and keeps its torch; else torch==2.13.0.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@site=$$($(PYTHON) -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))" 2>/dev/null) \
	  && [ -n "$$site" ] && echo "keeping the torch of $(PYTHON) ($$site)" \
	  && echo "$$site" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_lrkit_torch_from.pth" \
	  || true
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Chromium for the page and JupyterLab tests: found, or Debian's via apt-get (failing loudly
# if apt-get fails); where there is no apt-get, or with BROWSER=no, those two tests skip.
browser:
	@if [ "$(BROWSER)" = no ]; then \
	  echo "BROWSER=no: no chromium installed; the page and JupyterLab tests skip"; \
	elif [ -n "$$LRKIT_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (apt-get) for the page and JupyterLab tests (BROWSER=no skips this)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "no chromium and no apt-get here: the page and JupyterLab tests skip (LRKIT_CHROMIUM=/path/to/chromium runs them)"; \
	fi

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
