.PHONY: setup demo test lint bench stack-up stack-down

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/ruff format --check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/mypy

# Two stages: the fast suite, then the tests that run a whole Airflow deployment.
test: lint
	.venv/bin/pytest -q -m "not deployment"
	@if [ -d tests/deployment ]; then .venv/bin/pytest -q -m deployment tests/deployment; fi

bench: setup
	.venv/bin/python bench/local_server.py
	.venv/bin/python bench/upload.py
	.venv/bin/python bench/warehouse.py

stack-up: setup
	@.venv/bin/python -m deploy.stack up

stack-down:
	@.venv/bin/python -m deploy.stack down
