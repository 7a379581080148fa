# The main commands README.md gives: `make series`, `make test` and `make book` (the site).
# Each sets up what it needs first (a virtualenv in .venv with every extra,
# and the Debian packages the lessons use where apt-get can install them).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup series test lessons book

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $@

setup: $(BIN)/.installed
	bash scripts/install_system_packages.sh

series: setup
	$(BIN)/vae-teach run-notebooks --notebooks notebooks --out build

# One pytest worker per core (pytest-xdist), each lesson's cells on one worker (conftest.py).
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile

# The book: a static site of the committed, executed lessons (nothing is re-run), with search,
# the bibliography and the API pages, readable offline; it goes to build/book/ (open index.html).
book: setup
	$(BIN)/python -m vae_teach.book --out build/book

# The edit -> execute -> commit loop: edit notebooks/NN_name.md, then
#   make lessons LESSONS=notebooks/NN_name.md
# rebuilds NN_name.ipynb from it and executes it top to bottom in a fresh kernel.
LESSONS ?= $(wildcard notebooks/[0-9][0-9]_*.md notebooks/[0-9][0-9][a-z]_*.md)
lessons: setup
	$(BIN)/vae-teach execute $(LESSONS)
