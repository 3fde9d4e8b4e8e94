.PHONY: setup demo test lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check airflow_provider_brain tests bench example_dags
	.venv/bin/ruff format --check airflow_provider_brain tests bench example_dags
	.venv/bin/mypy

test: lint
	.venv/bin/pytest -q

bench: setup
	.venv/bin/python bench/local_server.py
	.venv/bin/python bench/upload.py
	.venv/bin/python bench/warehouse.py
