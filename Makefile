.PHONY: setup setup-demo setup-floor demo test test-floor lint bench stack-up stack-down

# The oldest Airflow the provider supports; `make test` runs the DAG tests on it too.
FLOOR_AIRFLOW ?= 3.1.8
# The floor's suite: every test that runs a DAG, the operators, triggers and provider metadata. What does not
# depend on the Airflow release (the local server, the hook's HTTP core, the loaders) runs on the newest only.
FLOOR_TESTS = tests/operators tests/triggers tests/provider tests/example_dags tests/transfers/test_transfer_dags.py

setup:
	@bash scripts/setup.sh test

setup-demo:
	@bash scripts/setup.sh demo

setup-floor:
	@FLOOR_AIRFLOW=$(FLOOR_AIRFLOW) bash scripts/setup.sh floor

demo: setup-demo
	@.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/ruff format --check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/mypy

# Three stages: the fast suite on the newest Airflow, the DAG tests on the oldest supported one, then the tests
# that run a whole Airflow deployment (newest). The fast suites run one pytest-xdist worker per core; each worker
# starts its own servers.
test: lint
	@echo "==> Fast suite on Airflow $$(.venv/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
	.venv/bin/pytest -q -m "not deployment" -n auto --durations=25
	@$(MAKE) --no-print-directory test-floor
	@echo "==> Deployment stage on Airflow $$(.venv/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
	@if [ -d tests/deployment ]; then .venv/bin/pytest -q -m deployment --durations=0 tests/deployment; fi

test-floor: setup-floor
	@echo "==> DAG tests on Airflow $$(.venv-floor/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))') (the floor)"
	.venv-floor/bin/pytest -q -m "not deployment" -n auto -p no:cacheprovider --durations=15 $(FLOOR_TESTS)

bench: setup
	.venv/bin/python bench/local_server.py
	.venv/bin/python bench/upload.py
	.venv/bin/python bench/warehouse.py

stack-up: setup
	@.venv/bin/python -m deploy.stack up

stack-down:
	@.venv/bin/python -m deploy.stack down
