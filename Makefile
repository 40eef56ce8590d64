# The README's commands. Everything runs from a virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint format lint-email clean migration

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## make install: .venv with the pinned runtime requirements, for production (README, "Running
## it for real"); then use .venv/bin/flask and .venv/bin/gunicorn, or activate .venv
install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt

## make run: web app + worker + local mail catcher on SQLite (Ctrl-C stops all three)
run: $(STAMP)
	FLASK_DEBUG=1 $(BIN)/python -m mailer.devserver

## make test: the whole test suite on SQLite and PostgreSQL, in two processes (pytest-xdist;
## each makes its own PostgreSQL database). A part, a room's folder or a file:
## make test PYTEST_ARGS="tests/digest -x"
PYTEST_ARGS ?= -n 2
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: benchmarks (not part of the tests); results in bench/results/
bench: $(STAMP)
	$(BIN)/python -m bench

## make migration MESSAGE="what changed": the next migration from mailer/models.py (needs PostgreSQL)
migration: $(STAMP)
	PYTHON=$(BIN)/python scripts/new_migration.sh "$(MESSAGE)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make lint-email: render a sample digest and check its HTML offline with doiuse-email
## (caniemail data) for Gmail, Apple Mail and Outlook.com; fails on any error
EMAIL_LINT := tools/email-lint
EMAIL_LINT_HTML ?= instance/email-lint/digest.html
$(EMAIL_LINT)/node_modules/.installed: $(EMAIL_LINT)/package.json $(EMAIL_LINT)/package-lock.json
	cd $(EMAIL_LINT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint-email: $(STAMP) $(EMAIL_LINT)/node_modules/.installed
	$(BIN)/python $(EMAIL_LINT)/render_sample.py $(EMAIL_LINT_HTML)
	node $(EMAIL_LINT)/check.mjs $(EMAIL_LINT_HTML)

clean:
	rm -rf $(VENV) instance/*.sqlite3* instance/mailbox
