# Two commands: `make run` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PYTHONPATH := platform:.

.PHONY: run test lint test-integration install clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Tessera needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when a requirements file changed.
$(INSTALLED): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(INSTALLED)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py train_demo_models
	$(BIN)/python manage.py seed_demo
	@echo "Tessera: http://127.0.0.1:8000 (Ctrl-C stops the web server and the worker)"
	$(BIN)/python manage.py run_embedded 127.0.0.1:8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# The database, broker and worker tests again, against servers named by DATABASE_URL and
# CELERY_BROKER_URL (.ci/run points them at PostgreSQL and Redis).
test-integration: install
	$(BIN)/python -m pytest -m "django_db or worker or postgres or redis" tests

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
