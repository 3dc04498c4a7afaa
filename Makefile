# Two commands do all set-up on a fresh machine: `make test` and `make book`.
# Each creates .venv if missing and installs what it needs once; a second run
# installs nothing (the stamp file below records the last install).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: test book lint unit clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	# d2l 1.0.3 pins numpy 1.23.5 and other old releases: installed with its
	# dependencies it breaks numpy/torchvision here and fails on Python 3.12.
	# Without them it imports and works with numpy 2.
	$(PY) -m pip install --quiet --no-deps d2l==1.0.3
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

unit: $(STAMP)
	$(PY) -m pytest tests

test: lint unit book-check

book-check: $(STAMP)
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book built: $(CURDIR)/_build/html/index.html"

clean:
	rm -rf _build .pytest_cache
