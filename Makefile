# Two commands on a fresh clone: `make run` (install + materialize on the embedded defaults)
# and `make test` (install + the whole test suite). Everything lands under .mlplatform/ and models/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: install lock run test lint dev mlflow-ui mlflow-server celery-worker optuna-dashboard predict promote rollback repair prune bench clean

# requirements.lock pins every package a fresh clone installs, so it resolves the same versions
# every day; `make lock` regenerates it after pyproject.toml's dependencies change.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

install: $(STAMP)

run: install
	$(BIN)/python -m mlplatform run

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check mlplatform mlplatform_tests benchmarks
	$(BIN)/ruff format --check mlplatform mlplatform_tests benchmarks
	$(BIN)/mypy

dev: install
	$(BIN)/python -m mlplatform dev --host $(HOST) --port $(PORT)

mlflow-ui: install
	$(BIN)/python -m mlplatform mlflow-ui --host $(HOST)

# MLflow tracking server on Postgres with proxied artifacts (clients see mlflow-artifacts:); the
# database is created when missing. Point the platform at it: MLPLATFORM_MLFLOW_TRACKING_URI.
# Clients reaching it by a DNS name other than that URI's host: ALLOWED_HOSTS=mlflow.internal,...
MLFLOW_BACKEND ?= postgresql+psycopg2://postgres@127.0.0.1:5432/mlplatform_mlflow
MLFLOW_ARTIFACTS ?= $(CURDIR)/.mlplatform/mlflow-server/artifacts
MLFLOW_PORT ?= 5000
mlflow-server: install
	$(BIN)/python -m mlplatform mlflow-server --backend-store-uri "$(MLFLOW_BACKEND)" \
		--artifacts-destination "$(MLFLOW_ARTIFACTS)" --host $(HOST) --port $(MLFLOW_PORT) \
		$(if $(ALLOWED_HOSTS),--allowed-hosts "$(ALLOWED_HOSTS)",)

# A Celery worker for `run --executor celery` (and MLPLATFORM_EXECUTOR=celery): the broker, backend
# and asset folder from the environment, as on the run's host (mlplatform/celery.yaml). The venv's
# bin goes first on PATH: dagster-celery starts the `celery` command.
celery-worker: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dagster-celery worker start \
		-A dagster_celery.app -y mlplatform/celery.yaml

# The day's scores (DATE empty = the last bar's date) as CSV on standard output, or FORMAT=json,
# or into OUTPUT; they also land in the prediction log (.mlplatform/predictions/<date>.parquet).
predict: install
	@$(BIN)/python -m mlplatform predict $(if $(DATE),--date $(DATE),) $(if $(FORMAT),--format $(FORMAT),) $(if $(OUTPUT),--output $(OUTPUT),)

# Optuna's dashboard over the studies tuning writes: MLPLATFORM_OPTUNA_STORAGE when set (Postgres,
# journal+file://, journal+redis://), else the home folder's SQLite file.
OPTUNA_PORT ?= 8080
optuna-dashboard: install
	$(BIN)/python -m mlplatform.training.study_report --host $(HOST) --port $(OPTUNA_PORT)

# Promotion is a person's decision: REASON is recorded; OVERRIDE=1 skips failed checks (needs REASON).
promote: install
	$(BIN)/python -m mlplatform promote --reason "$(REASON)" $(if $(OVERRIDE),--override,)

# VERSION empty = the previous production version.
rollback: install
	$(BIN)/python -m mlplatform rollback $(if $(VERSION),--version $(VERSION),) --reason "$(REASON)"

# After any crash: finish or undo the unfinished registry operation, rebuild models/ from the registry.
repair: install
	$(BIN)/python -m mlplatform repair

# The retention policy (MLPLATFORM_RETENTION_KEEP_LAST, _KEEP_DAYS): old versions go with their
# MLflow runs, studies and reports; never production, the previous one, staging or archived ones.
# DRY_RUN=1 lists what would go and removes nothing.
prune: install
	$(BIN)/python -m mlplatform prune $(if $(DRY_RUN),--dry-run,)

# Every benchmark at its defaults (long: bench_gate alone retrains 40 markets), then the page
# docs/benchmarks.md from their final JSON lines; ONLY=bench_drift,bench_promotion runs only those.
bench: install
	$(BIN)/python -m benchmarks.report $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf .mlplatform models
