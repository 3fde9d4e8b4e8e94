.PHONY: setup setup-demo setup-floor demo test test-floor test-late test-deployment lint bench stack-up stack-down docs

# The oldest Airflow the provider supports; `make test` runs the DAG tests on it too.
FLOOR_AIRFLOW ?= 3.1.8
# The floor's suite: what differs between Airflow releases, not every DAG run again. The provider metadata and the
# pinned Airflow internals; the triggers and the operators' in-process tests; and one DAG run per code path that
# differs by release: ResumableJobMixin (3.3's task_state_store, the compat stand-in before it) across retries, a
# deferral and its resume, the deadline of a deferred task, start_from_trigger's fallback, a deferrable sensor,
# the Rendered Template tab's hidden URLs (_do_render_template_fields: plain, mapped, resumed, batch), the
# example DAGs loading and their params refused by Airflow, and the transfers' XCom and asset events
# (test_transfer_dags, test_downstream). What does not depend on the release (the local server, the hook's HTTP
# core, the loaders, the other example DAG runs) runs on the newest only.
FLOOR_TESTS = tests/provider tests/triggers \
	tests/operators/test_transcribe_unit.py tests/operators/test_trigger_start.py \
	tests/operators/test_reuse_existing.py tests/operators/test_search_operator.py \
	tests/operators/test_signed_url_rendering.py \
	tests/operators/test_transcribe_dags.py::test_deferrable_really_defers \
	tests/operators/test_transcribe_dags.py::test_retry_after_submission_resumes_the_same_asset \
	'tests/operators/test_transcribe_dags.py::test_the_deadline_spans_all_tries_and_cancels_the_asset[brain_deadline_deferred]' \
	tests/operators/test_transcribe_dags.py::test_start_from_trigger_falls_back_to_the_worker_and_says_why \
	tests/operators/test_transcribe_dags.py::test_sensor_deferrable \
	tests/example_dags/test_example_dags.py::test_example_dags_load_without_errors \
	tests/example_dags/test_example_dags.py::test_s3_to_warehouse_shape \
	tests/example_dags/test_example_dags.py::test_s3_batch_shape \
	tests/example_dags/test_example_dags.py::test_event_triggered_shape \
	tests/example_dags/test_example_dags.py::test_local_file_shape \
	tests/example_dags/test_asset_sensor_example.py::test_asset_sensor_shape \
	tests/example_dags/test_asset_sensor_example.py::test_bad_asset_ids_name_the_param \
	tests/example_dags/test_asset_sensor_example.py::test_asset_ids_in_order_once \
	tests/example_dags/test_asset_sensor_example.py::test_bad_conf_fails_before_the_run_naming_the_param \
	tests/example_dags/test_downstream.py \
	tests/transfers/test_transfer_dags.py

# .venv-floor is installed while lint and the fast suite run (about 45 s, mostly compiling bytecode, beside them:
# lint keeps one core busy, the fast suite both, so the install lengthens it a little), its output in
# dist/floor-setup.log.
# setup-floor takes the same lock: test-floor waits for that install, then finds it done (had it failed, it installs
# again, in sight).
FLOOR_SETUP = mkdir -p dist && FLOOR_AIRFLOW=$(FLOOR_AIRFLOW) flock dist/floor-setup.lock bash scripts/setup.sh floor

# Runs a stage ($(2)) and prints its wall time and CPU time under its name ($(1)) (scripts/timed.sh); timed_rc leaves
# the stage's exit status in $$rc for the rest of the recipe's line, timed makes it make's.
timed_rc = bash scripts/timed.sh "$(1)" $(2); rc=$$?
timed = $(call timed_rc,$(1),$(2)); exit $$rc
AIRFLOW_VERSION = $$($(1)/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')

setup:
	@bash scripts/setup.sh test

setup-demo:
	@bash scripts/setup.sh demo

setup-floor:
	@$(FLOOR_SETUP)

demo: setup-demo
	@.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/ruff format --check airflow_provider_brain tests bench example_dags deploy scripts
	.venv/bin/mypy

# Four stages: the fast suite on the newest Airflow, the tests that assert on wall-clock time, the floor's suite on the
# oldest supported Airflow, and the tests that run a whole Airflow deployment (newest). The fast suite runs
# FAST_WORKERS pytest-xdist workers (worksteal: an idle worker takes queued tests from a busy one, so a long DAG run
# does not leave a tail on one worker): three on this 2-core machine, since a DAG run spends much of its time
# waiting on Brain, which left a third of the cores idle with two (726 tests: 750 s with two workers, 596 s with
# three, 553 s with four). The tests marked `alone` (they assert on wall-clock time) run after it, one at a time
# with nothing beside them. Then the deployment stage runs, its length set by its waits on the deployment (it uses
# about 360 CPU-s in 590 s), and beside it the floor's suite on one worker and the fast suite's DAG runs (LATE_TESTS,
# newest Airflow) on LATE_WORKERS: a quarter of both cores was idle beside the floor alone (871 CPU-s in a 584 s
# stage), and once the recognition cache and the airflow fork server had made the floor (455 s) and the example
# DAG runs (380 s) end well before the deployment (616 s), the operators' and transfers' DAG runs joined them on a
# second worker: 1,030 s for a clean run against 1,064 s, the fast suite 279 s against 371 s (904.6 s once the
# deployment's backlog became downloads that trickle in). Moving the batch operators' DAG runs and the Sphinx
# build there too cut the fast suite to 197 s but lengthened the last phase: 962.8 s. Once the deployment's Brain
# answered repeated clips from a cache (its stage 592 s, the floor 478 s and the DAG runs 499 s beside it: 931 s),
# the Deepgram batch DAG runs and the Sphinx build moved there: the fast suite 219 s, the last phase 587 s, 897 s.
# Their output follows the deployment's. Each stage prints its wall time and CPU time. Running the fast suite beside
# the deployment as well gained nothing: the cores were busy throughout (1,352 s for a clean run), and the fast suite,
# at nice 10, lost two timing-bound tests to the load (the figures before the cache and the fork server); tried
# again after them, with the wall-clock tests first, the fast suite took 504 s beside the deployment (679 s,
# 472 CPU-s) and the floor and the DAG runs after it would have ended past 1,000 s. Nor did
# more workers then: four in the fast suite and two for the example DAG runs took 1,294 s against 1,211 s (fast
# suite 517 s against 477 s; 2,315 CPU-s against 2,112).
FAST_WORKERS ?= 3
FLOOR_WORKERS ?= auto
LATE_TESTS = tests/example_dags tests/operators/test_transcribe_dags.py tests/operators/test_deepgram_dags.py \
	tests/operators/test_deepgram_batch.py tests/operators/test_signed_url_rendering.py \
	tests/operators/test_progress_and_metrics.py tests/transfers/test_transfer_dags.py \
	tests/transfers/test_deepgram_transfers.py tests/docs/test_docs.py
LATE_WORKERS ?= 2
# The fast suite's tests (LATE_TESTS among them): neither the deployment's nor those that assert on wall-clock time.
FAST_MARKERS = not deployment and not alone
test: setup
	@mkdir -p dist && ({ $(FLOOR_SETUP); } </dev/null >dist/floor-setup.log 2>&1 &)
	@$(MAKE) --no-print-directory lint
	@echo "==> Fast suite on Airflow $(call AIRFLOW_VERSION,.venv) (its DAG runs later, beside the deployment)"
	@$(call timed,fast suite,.venv/bin/pytest -q -m "$(FAST_MARKERS)" -n $(FAST_WORKERS) --dist worksteal --durations=25 $(LATE_TESTS:%=--ignore=%))
	@$(call timed,alone tests (wall-clock timing; one at a time),.venv/bin/pytest -q -m "alone and not deployment" -p no:xdist --durations=5)
	@$(MAKE) --no-print-directory test-deployment BESIDE_DEPLOYMENT="test-floor test-late"

# The deployment stage, with BESIDE_DEPLOYMENT (make targets, each on one worker) running beside it; their output
# follows the deployment's, from dist/<target>.log.
BESIDE_DEPLOYMENT ?= test-floor
test-deployment:
	@mkdir -p dist; pids=""; for target in $(BESIDE_DEPLOYMENT); do \
	  ($(MAKE) --no-print-directory $$target FLOOR_WORKERS=1 </dev/null >dist/$$target.log 2>&1) & pids="$$pids $$!"; done; \
	echo "==> Deployment stage on Airflow $(call AIRFLOW_VERSION,.venv), beside it: $(BESIDE_DEPLOYMENT)"; \
	rc=0; if [ -d tests/deployment ]; then $(call timed_rc,deployment stage,.venv/bin/pytest -q -m deployment --durations=0 tests/deployment); fi; \
	status=$$rc; for pid in $$pids; do wait $$pid; rc=$$?; [ $$status -ne 0 ] || status=$$rc; done; \
	for target in $(BESIDE_DEPLOYMENT); do cat dist/$$target.log; done; exit $$status

# The fast suite's DAG runs (LATE_TESTS), on LATE_WORKERS workers: `make test` runs them beside the deployment stage.
test-late: setup
	@echo "==> The DAG runs (example DAGs, operators, transfers) and the docs build on Airflow $(call AIRFLOW_VERSION,.venv)"
	@$(call timed,DAG runs,.venv/bin/pytest -q -m "$(FAST_MARKERS)" -n $(LATE_WORKERS) --dist worksteal --durations=15 $(LATE_TESTS))

test-floor: setup-floor
	@echo "==> The floor's suite on Airflow $(call AIRFLOW_VERSION,.venv-floor)"
	@$(call timed,floor suite,.venv-floor/bin/pytest -q -m "not deployment" -n $(FLOOR_WORKERS) --dist worksteal -p no:cacheprovider --durations=15 $(FLOOR_TESTS))

# The docs, in docs/_build/html: Sphinx with warnings as errors (-W) and every reference into the documented modules
# checked (-n); the how-to pages include the example DAGs' code between their [START]/[END] markers. Nothing is
# fetched at build time (no intersphinx). A fresh machine gets .venv from `scripts/setup.sh demo` first.
docs:
	@[ -x .venv/bin/uv ] || bash scripts/setup.sh demo
	@.venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -e ".[docs]"
	@rm -rf docs/_build/html
	@$(call timed,docs,.venv/bin/sphinx-build -b html -n -W --keep-going -q -d docs/_build/doctrees docs docs/_build/html)
	@echo "==> docs/_build/html/index.html"

bench: setup
	.venv/bin/python bench/local_server.py
	.venv/bin/python bench/upload.py
	.venv/bin/python bench/warehouse.py

stack-up: setup
	@.venv/bin/python -m deploy.stack up

stack-down:
	@.venv/bin/python -m deploy.stack down
