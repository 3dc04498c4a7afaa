# Two commands do all set-up on a fresh machine: `make test` and `make book`
# (a student who only works through the chapters runs `make lab` instead).
# Each creates .venv if missing and installs what it needs once; a second run
# installs nothing (stamp files record what was installed, and from what).

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
VENDOR  := _vendor/vendor
PROFILE ?= cpu
# Offline CIFAR-10 for notebooks (the real 5k/1k subset beside the checkout);
# where it is absent, resnet_lab.data looks elsewhere and downloads.
CIFAR_DATA ?= $(abspath ../shared/data/cifar10-subset)
NB_DATA := $(if $(wildcard $(CIFAR_DATA)),RESNET_LAB_DATA=$(CIFAR_DATA),)
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Offline copies of what the HTML book would otherwise load from CDNs.
NPM_PACKAGES := mathjax@3.2.2 requirejs@2.3.8 @jupyter-widgets/html-manager@1.0.7

.PHONY: test book lint unit slow nbval book-check browser outputs colab-url vendor setup bench student lab clean

setup: $(STAMP) $(VENDOR)/.stamp

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

# MathJax, RequireJS and the ipywidgets HTML manager, from the npm registry
# (tarballs only, no dependency tree), copied into the built book as vendor/
# (html_extra_path; not _static, whose .js files Jupyter Book loads on every page).
$(VENDOR)/.stamp: Makefile
	rm -rf .vendor _vendor && mkdir -p .vendor $(VENDOR)
	cd .vendor && npm pack --silent $(NPM_PACKAGES) > /dev/null
	cd .vendor && for t in *.tgz; do mkdir -p "$${t%.tgz}" && tar xzf "$$t" -C "$${t%.tgz}"; done
	cp -r .vendor/mathjax-3.2.2/package/es5 $(VENDOR)/mathjax
	cp .vendor/requirejs-2.3.8/package/require.js $(VENDOR)/require.min.js
	cp .vendor/jupyter-widgets-html-manager-1.0.7/package/dist/embed-amd.js $(VENDOR)/embed-amd.js
	# html-manager 1.0.7 typesets widget labels with MathJax 2's Hub.Queue; the
	# book runs MathJax 3, so call its typesetPromise where that exists.
	sed -E -i 's/MathJax\.Hub\.Queue\(\["Typeset",MathJax\.Hub,([a-z])\]\)/(MathJax.typesetPromise?MathJax.typesetPromise([\1]):MathJax.Hub.Queue(["Typeset",MathJax.Hub,\1]))/g' $(VENDOR)/embed-amd.js
	find .vendor/jupyter-widgets-html-manager-1.0.7/package/dist -maxdepth 1 \
	  \( -name '*.woff*' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) -exec cp {} $(VENDOR)/ \;
	cp book/widgets-config.js $(VENDOR)/
	rm -rf .vendor
	touch $@

vendor: $(VENDOR)/.stamp

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two tiers of tests (the `slow` marker, registered in pyproject.toml): unit is
# everything in-process that takes seconds, under 2 minutes on a 2-core machine;
# slow is notebook kernels, fresh Pythons killed and resumed, the wheel.
unit: $(STAMP)
	$(PY) -m pytest tests -m "not slow" --durations=15

slow: $(STAMP)
	$(PY) -m pytest tests -m slow --durations=0

# Every notebook, every cell, under the smoke profile, with a fresh run
# folder; cells tagged nbval-check-output must reproduce their committed output.
# Then the run folder must hold exactly the runs the chapters' smoke plans list.
nbval: $(STAMP)
	runs=$$(mktemp -d) && $(NB_DATA) RESNET_LAB_RUNS=$$runs RESNET_LAB_PROFILE=smoke MPLBACKEND=Agg \
	  RESNET_LAB_TRANSFER=offline $(PY) -m pytest --nbval-lax -p no:cacheprovider $(NOTEBOOKS) \
	  && RESNET_LAB_TRANSFER=offline $(PY) tools/check_runs.py smoke $$runs; status=$$?; rm -rf $$runs; exit $$status

book-check: setup
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

browser: $(STAMP)
	$(PY) -m pytest tests/browser_test.py

test: lint unit slow nbval book-check browser

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book built: $(CURDIR)/_build/html/index.html"

# Re-execute every notebook in place under PROFILE=cpu|gpu|paper, saving widget
# state so widgets render in the HTML book, then update each chapter's box of
# times (tools/chapter_info.py). Commit the result.
outputs: $(STAMP)
	$(NB_DATA) RESNET_LAB_PROFILE=$(PROFILE) $(PY) tools/execute_notebooks.py $(NOTEBOOKS)

# The student edition: every chapter without solutions and outputs, in student/.
# `make student PROFILE=gpu` (or CLASS_PROFILE=gpu) writes the class's profile into every
# chapter's set-up cell; without it (PROFILE's default does not count) each machine chooses.
CLASS_PROFILE ?= $(if $(filter command line,$(origin PROFILE)),$(PROFILE))
student: $(STAMP)
	$(PY) tools/student_edition.py student $(if $(CLASS_PROFILE),--profile $(CLASS_PROFILE))

# A student's own machine: create .venv once (as `make test` does, without the tests, the
# book or npm) and open JupyterLab on the chapters. Stop it with Ctrl-C.
# LAB=student/notebooks opens the student edition (after `make student`) instead of the full book.
LAB ?= notebooks
lab: $(STAMP)
	cd $(LAB) && $(NB_DATA) "$(CURDIR)/$(VENV)/bin/jupyter" lab

# After changing repository.url in _config.yml: rewrite every notebook's Colab cell.
colab-url: $(STAMP)
	$(PY) tools/nbtools.py

bench: $(STAMP)
	$(PY) benchmarks/trainer_speed.py
	$(PY) benchmarks/laptop_accuracy.py
	$(NB_DATA) $(PY) benchmarks/plan_vs_measured.py

clean:
	rm -rf _build .pytest_cache .vendor _vendor student runs notebooks/runs
