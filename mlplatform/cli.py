"""`python -m mlplatform run|predict|promote|rollback|repair|prune|dev|mlflow-ui|mlflow-server` on
the embedded home folder.

Every command uses the same Dagster instance (DAGSTER_HOME under the home folder) as `dagster dev`,
so what the CLI does shows up in the UI and vice versa.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import optuna
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.locks import LockTimeout, exclusive
from mlplatform.orchestration.executors import CLI_ASSETS_JOB, EXECUTORS, execution_config
from mlplatform.orchestration.jobs import RETRAIN_TAGS, SERVING_ASSETS
from mlplatform.orchestration.liveness import close_dead_dagster_runs, process_tags
from mlplatform.promotion import BLOCKING_CRITERIA, WARNING_CRITERIA
from mlplatform.promotion.decision import OVERRIDE_STEP, PROMOTE_STEP

DAGSTER_YAML = Path(__file__).with_name("dagster.yaml")  # the instance a new home gets


def prepare_home() -> Path:
    """Create the home folder; point DAGSTER_HOME at its dagster/ folder unless the user set one
    (e.g. a Postgres instance from deploy/dagster-postgres.yaml), which is used as it is."""
    (config.home_dir() / "optuna").mkdir(parents=True, exist_ok=True)
    if not config.mlflow_tracking_uri().startswith(("http://", "https://")):  # a server keeps them
        config.mlflow_artifact_root().mkdir(parents=True, exist_ok=True)
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    dagster_home = config.dagster_home()
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings = dagster_home / "dagster.yaml"
    if not settings.exists():
        shutil.copyfile(DAGSTER_YAML, settings)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def _instance() -> dg.DagsterInstance:
    """The home's Dagster instance. A fresh home's SQLite stores (Dagster's and MLflow's) are
    created one process at a time: two commands started together would both create them."""
    prepare_home()
    lock = config.home_dir() / ".init.lock"
    with exclusive(lock, "mlplatform:init", None, timeout_s=config.PROMOTION_LOCK_TIMEOUT_S):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1)
        tracking_uri = config.mlflow_tracking_uri()
        if tracking_uri.startswith("sqlite:"):
            MlflowClient(tracking_uri=tracking_uri).search_experiments()
    return instance


def pipeline_selection() -> dg.AssetSelection:
    """Everything but production_model (`run` never promotes) and the day's scores (`predict`
    and the daily refresh make those, one date at a time)."""
    return dg.AssetSelection.all() - dg.AssetSelection.assets("production_model", *SERVING_ASSETS)


def execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    trigger: str,
    job: str | None = None,
    assets: list[dg.AssetKey] | None = None,
    run_config: dict | None = None,
    executor: str = "in_process",
    tags: Mapping[str, str] | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Run a named job, or the given assets, on `instance`, tagged with its trigger: in this
    process, or through Dagster's multiprocess or Celery executor (steps in other processes,
    which rebuild the job through mlplatform.definitions.job_for)."""
    tags = {"mlplatform/trigger": trigger, **process_tags(), **(tags or {})}
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # no per-event DEBUG
    if executor == "in_process":
        job_def = defs.resolve_job_def(job) if job else defs.resolve_implicit_global_asset_job_def()
        return job_def.execute_in_process(
            instance=instance,
            asset_selection=assets,
            run_config={**quiet, **(run_config or {})},
            raise_on_error=False,
            tags=tags,
            partition_key=partition_key,
        )
    # Not opened as a context: that builds every resource again, to load outputs nobody reads.
    result = dg.execute_job(
        dg.build_reconstructable_job(  # a pointer each step process rebuilds the job from
            "mlplatform.definitions",
            "job_for",
            # Dagster annotates the tuple as one element; it passes any number to job_for.
            reconstructable_args=(job or CLI_ASSETS_JOB, executor),  # type: ignore[arg-type]
            reconstructor_working_directory=str(config.PROJECT_ROOT),
        ),
        instance,
        run_config={**quiet, **(run_config or {}), **execution_config(executor)},
        tags={**tags, **({"dagster/partition": partition_key} if partition_key else {})},
        asset_selection=assets,
    )
    return result  # type: ignore[return-value]  # the same events API


def run_pipeline(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
    executor: str = "in_process",
) -> dg.ExecuteInProcessResult:
    """Every asset but production_model, tagged as a retrain: the run queue counts it."""
    keys = pipeline_selection().resolve(defs.resolve_asset_graph())
    return execute(
        defs,
        instance,
        trigger="cli_run",
        assets=list(keys),
        run_config=run_config,
        executor=executor,
        tags=RETRAIN_TAGS,
    )


def run_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every step failure, or the root cause of a run that failed outside any step (a resource
    or store). A failed promotion criterion is a check result, never one of these."""
    errors = [
        f"step {e.step_key} failed: {failure_text(e)[:500]}"
        for e in result.all_events
        if e.is_step_failure
    ]
    if errors or result.success:
        return errors
    messages = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_run_failure else None
        while error is not None and error.cause is not None:  # the root cause names the store
            error = error.cause
        if error is not None:
            messages.append(error.message.strip()[:500])
    materialized = len(result.get_asset_materialization_events())
    return [
        f"run failed with {materialized} asset(s) materialized: "
        + ("; ".join(m for m in messages if m) or "see the Dagster run's logs")
    ]


def _summary(result: dg.ExecuteInProcessResult) -> str:

    errors = run_errors(result)
    outcome = "FAILED" if errors else "succeeded"
    lines = ["", "=" * 78, f"mlplatform run {result.run_id[:8]}: {outcome}", "=" * 78]
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        meta = mat.metadata
        facts = []
        for key in (
            "dagster/row_count",
            "tickers",
            "semver",
            "registry_version",
            "best_cv_log_loss",
            "accuracy",
            "drift_share",
        ):
            if key in meta:
                value = meta[key].value
                facts.append(
                    f"{key.split('/')[-1]}={value:.4g}"
                    if isinstance(value, float)
                    else f"{key.split('/')[-1]}={value}"
                )
        lines.append(f"  ✓ {mat.asset_key.to_user_string():<18} {' '.join(facts)}")
        windows = meta.get("windows")
        if windows is not None and windows.value != "as configured":
            lines.append(f"    (short history) {windows.value}")
    backtest = [
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("backtest_report")
    ]
    if backtest:
        lines += [
            "",
            "Walk-forward evaluation (every column out of sample):",
            str(backtest[-1].metadata["comparison"].value),
        ]
        meta = backtest[-1].metadata
        if "vs_bayes_optimal_accuracy" in meta:
            lines.append(
                "Synthetic market: the Bayes-optimal rule (the true P(up)) scores "
                f"{meta['vs_bayes_optimal_accuracy'].value:.4f} on these rows; staging scores "
                f"{meta['accuracy'].value:.4f}. Nothing honest beats it; a model that "
                "does is leaking."
            )
    checks = result.get_asset_check_evaluations()
    promotion = [c for c in checks if c.check_name in BLOCKING_CRITERIA]
    if promotion:
        lines.append("")
        lines.append("Promotion criteria:")
        for check in promotion:
            lines.append(
                f"  {'PASS' if check.passed else 'FAIL'}  {check.check_name}: "
                f"{check.description or ''}"
            )
        if all(c.passed for c in promotion):
            lines += ["", f"Every criterion passed. Next: {PROMOTE_STEP}"]
        else:
            failed = sum(not c.passed for c in promotion)
            lines += [
                "",
                f"Not promotable: {failed} of {len(promotion)} criteria failed (a verdict on the "
                f"candidate, not an error). Or {OVERRIDE_STEP}",
            ]
    lines += [f"  ✗ {error}" for error in errors]
    lines += [
        "",
        f"Home folder: {config.home_dir()}",
        f"Model export: {config.models_dir()}",
        "Open the UI: make dev   |   MLflow UI: make mlflow-ui",
        "",
    ]
    return "\n".join(lines)


def markdown_summary(result: dg.ExecuteInProcessResult) -> str:
    """The retrain for a CI job summary ($GITHUB_STEP_SUMMARY): comparison, criteria, verdict."""
    errors = run_errors(result)
    lines = [f"## mlplatform retrain {result.run_id[:8]}: {'failed' if errors else 'finished'}"]
    lines += [f"- ✗ {error}" for error in errors]
    backtest = [
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("backtest_report")
    ]
    if backtest:
        meta = backtest[-1].metadata
        comparison = str(meta["comparison"].value)
        lines += ["", "### Walk-forward evaluation (out of sample)", "", comparison]
    promotion = [c for c in result.get_asset_check_evaluations() if c.check_name in CRITERIA]
    if promotion:
        lines += ["", "### Promotion criteria", "", "| check | result | figures |", "|---|---|---|"]
        for check in promotion:
            blocking = check.check_name in BLOCKING_CRITERIA
            result_text = "pass" if check.passed else ("FAIL" if blocking else "warning")
            figures = (check.description or "").replace("|", "/")
            lines.append(f"| {check.check_name} | {result_text} | {figures} |")
        failed = [c for c in promotion if c.check_name in BLOCKING_CRITERIA and not c.passed]
        verdict = (
            f"**Ready for review.** Next: {PROMOTE_STEP}"
            if not failed
            else f"**Not promotable**: {len(failed)} criteria failed. Or {OVERRIDE_STEP}"
        )
        lines += ["", verdict]
    return "\n".join(lines) + "\n"


CRITERIA = (*BLOCKING_CRITERIA, *WARNING_CRITERIA)
RETRAIN_WAIT_S = 24 * 3600.0  # a retrain waiting longer than a day for another is stuck: say so
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _retrain_lock(timeout_s: float) -> contextlib.AbstractContextManager[None]:
    name = f"{config.MODEL_NAME}:retrain"
    path = config.home_dir() / "retrain.lock"
    return exclusive(path, name, config.registry_lock_url(), timeout_s=timeout_s)


@contextlib.contextmanager
def retrain_slot(instance: dg.DagsterInstance) -> Iterator[None]:
    """One retrain at a time on a home, whatever starts it. CLI retrains take turns on a lock
    (every host's, with a cross-host lock URL); then wait for the retrains the run queue
    launched (UI, schedule, sensor), which in turn count this one, tagged as theirs, against
    the queue's limit. Runs of processes that died are closed first, so none waits on them."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_retrain_lock(0.0))
        except LockTimeout:
            print("mlplatform run: another retrain runs on this home; waiting for it", flush=True)
            stack.enter_context(_retrain_lock(RETRAIN_WAIT_S))
        close_dead_dagster_runs(instance)
        waiting = dg.RunsFilter(statuses=IN_PROGRESS, tags=RETRAIN_TAGS)
        told = False
        while others := instance.get_runs(filters=waiting):
            if not told:
                print(
                    f"mlplatform run: waiting for {others[0].job_name} run "
                    f"{others[0].run_id[:8]} ({others[0].status.value}): one retrain at a time",
                    flush=True,
                )
                told = True
            time.sleep(2.0)
        yield


def cmd_run(args: argparse.Namespace) -> int:
    from mlplatform.definitions import build_definitions

    instance = _instance()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials are in MLflow and the UI
    tuning = {"n_trials": args.trials} if args.trials is not None else {}
    if args.workers is not None:
        tuning["workers"] = args.workers
    run_config = {"ops": {"tuned_params": {"config": tuning}}} if tuning else {}
    try:
        execution_config(args.executor)  # refuse before any work
    except ValueError as exc:
        print(f"mlplatform run: {exc}", file=sys.stderr)
        return 2
    with retrain_slot(instance):
        result = run_pipeline(build_definitions(), instance, run_config, executor=args.executor)
    print(_summary(result))
    if args.summary_file:
        with open(args.summary_file, "a", encoding="utf-8") as summary:
            summary.write(markdown_summary(result))
    return 1 if run_errors(result) else 0


def _last_feature_date(instance: dg.DagsterInstance) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey("features"))
    if event is None or event.asset_materialization is None:
        return None
    return str(event.asset_materialization.metadata["last_date"].value)


def cmd_predict(args: argparse.Namespace) -> int:
    """Score a date (default: the last one with features) and print or write its rows."""
    from mlplatform.definitions import build_definitions
    from mlplatform.orchestration.assets.serving import TRADING_DATES
    from mlplatform.serving import PredictionLog

    instance = _instance()
    date = args.date or _last_feature_date(instance)
    if date is None:
        print("mlplatform predict: no features yet: run `make run` first", file=sys.stderr)
        return 2
    if not TRADING_DATES.has_partition_key(date):
        print(
            f"mlplatform predict: {date} is not a trading date the platform scores (business "
            f"days from {TRADING_DATES.start:%Y-%m-%d} to today, as YYYY-MM-DD)",
            file=sys.stderr,
        )
        return 2
    result = execute(
        build_definitions(),
        instance,
        trigger="cli_predict",
        assets=[dg.AssetKey("predictions")],
        partition_key=date,
    )
    if not result.success:
        return _report_single(result, "predict", failed="failed")
    rows = PredictionLog(config.predictions_dir()).read(date)
    text = rows.to_json(orient="records", date_format="iso") if args.format == "json" else None
    if args.output:
        if text is None:
            rows.to_csv(args.output, index=False)
        else:
            Path(args.output).write_text(text)
        print(f"predict: {len(rows)} rows for {date} written to {args.output}", file=sys.stderr)
    else:
        print(text if text is not None else rows.to_csv(index=False), end="")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from mlplatform.definitions import build_definitions

    promotion = {"reason": args.reason or "", "override": bool(args.override)}
    result = execute(
        build_definitions(),
        _instance(),
        trigger="cli_promote",
        assets=[dg.AssetKey("production_model")],
        run_config={"ops": {"production_model": {"config": promotion}}},
    )
    return _report_single(result, "promotion")


def cmd_rollback(args: argparse.Namespace) -> int:
    from mlplatform.definitions import build_definitions

    target = {"to_version": args.version or "", "reason": args.reason or ""}
    result = execute(
        build_definitions(),
        _instance(),
        trigger="cli_rollback",
        job="rollback_job",
        run_config={"ops": {"rollback_production": {"config": target}}},
    )
    return _report_single(result, "rollback")


def cmd_repair(args: argparse.Namespace) -> int:
    from mlplatform.definitions import build_definitions

    result = execute(
        build_definitions(), _instance(), trigger="cli_repair", job="repair_export_job"
    )
    if not result.success:
        return _report_single(result, "repair", failed="incomplete")
    output = result.output_for_node("repair_production")
    print("repair done: registry, aliases, tags and models/ agree")
    for line in output["lines"]:
        print(f"  {line}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from mlplatform.definitions import build_definitions

    result = execute(
        build_definitions(),
        _instance(),
        trigger="cli_prune",
        job="prune_job",
        run_config={"ops": {"prune_registry": {"config": {"dry_run": bool(args.dry_run)}}}},
    )
    if not result.success:
        return _report_single(result, "prune", failed="incomplete")
    output = result.output_for_node("prune_registry")
    print("prune (dry run: nothing removed)" if args.dry_run else "prune done")
    for line in output["lines"]:
        print(f"  {line}")
    return 0


def refusal(result: dg.ExecuteInProcessResult) -> str | None:
    """The verdict of a refused promotion (an observation of production_model), or None."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            observation = event.event_specific_data.asset_observation  # type: ignore[union-attr]
            if observation.metadata.get("verdict") and observation.description:
                return observation.description
    return None


def _report_single(result: dg.ExecuteInProcessResult, what: str, failed: str = "refused") -> int:
    if result.success:
        verdict = refusal(result)
        if verdict is not None:
            print(verdict, file=sys.stderr)
            return 1
        for event in result.get_asset_materialization_events():
            meta = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
            print(f"{what} done: production is now v{meta['production_version'].value}")
        return 0
    for event in result.all_events:
        if event.is_step_failure:
            print(f"{what} {failed}:\n{failure_text(event)}", file=sys.stderr)
    return 1


def failure_text(event: dg.DagsterEvent) -> str:
    """What a step failure says, in the words the platform gave it: a Failure's description
    (no exception class or traceback), else the error's message."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description.strip()
    return data.error.message.strip() if data.error is not None else "see the run's logs"


def cmd_dev(args: argparse.Namespace) -> int:
    # dagster dev's webserver, daemon and code server open the stores at once: create them first.
    _instance().dispose()
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    command = [
        dagster,
        "dev",
        "-h",
        args.host,
        "-p",
        str(args.port),
        "-w",
        str(config.PROJECT_ROOT / "workspace.yaml"),
    ]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}\n$ {' '.join(command)}")
    return subprocess.call(command, cwd=config.PROJECT_ROOT)


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    _instance().dispose()  # the UI and a run started beside it would both create the store
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    command = [
        mlflow,
        "ui",
        "--backend-store-uri",
        config.mlflow_tracking_uri(),
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print("$ " + " ".join(command))
    return subprocess.call(command, cwd=config.PROJECT_ROOT)


def create_database(url: str) -> None:
    """Create the Postgres database named by `url` when it does not exist yet (idempotent)."""
    import sqlalchemy as sa

    target = sa.engine.make_url(config.with_psycopg2(url))
    if target.get_backend_name() != "postgresql" or not target.database:
        return
    engine = sa.create_engine(target.set(database="postgres"), poolclass=sa.pool.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    finally:
        engine.dispose()


def allowed_hosts(extra: str) -> list[str]:
    """MLflow's own defaults (localhost, private addresses), the host of the platform's tracking
    URI (a DNS name such as mlflow.internal is refused with 403 otherwise) and `extra`."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    hosts = get_default_allowed_hosts()
    tracking = urlsplit(config.mlflow_tracking_uri())
    if tracking.scheme in ("http", "https") and tracking.hostname:
        hosts += [tracking.hostname, f"{tracking.hostname}:*"]
    hosts += [host.strip() for host in extra.split(",") if host.strip()]
    return list(dict.fromkeys(hosts))


def cmd_mlflow_server(args: argparse.Namespace) -> int:
    """An MLflow tracking server on a Postgres store with proxied artifacts: clients get
    `mlflow-artifacts:` URIs and never need the artifact folder (or bucket) themselves."""
    from sqlalchemy.engine import make_url

    create_database(args.backend_store_uri)
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    backend = config.with_psycopg2(args.backend_store_uri)
    command = [
        mlflow,
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        args.artifacts_destination,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
        "--allowed-hosts",
        ",".join(allowed_hosts(args.allowed_hosts)),
    ]
    # The URL comes from a Secret in a deployment: the command in the log shows no password.
    masked = make_url(backend).render_as_string(hide_password=True)
    print("$ " + " ".join(masked if part == backend else part for part in command))
    return subprocess.call(command, cwd=config.PROJECT_ROOT)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlplatform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset but production_model and the scores")
    run.add_argument("--trials", type=int, default=None, help="Optuna trials (default 50)")
    run.add_argument("--workers", type=int, default=None, help="Optuna worker processes (1)")
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="in_process",
        help="where steps run: this process, a process per step, or Celery workers "
        f"(broker {config.CELERY_BROKER_ENV}, asset values in {config.IO_DIR_ENV})",
    )
    run.add_argument(
        "--summary-file",
        default=None,
        help="append the comparison and the verdict as Markdown (e.g. $GITHUB_STEP_SUMMARY)",
    )
    run.set_defaults(func=cmd_run)
    predict = sub.add_parser("predict", help="score a date and print or write its predictions")
    predict.add_argument("--date", default=None, help="YYYY-MM-DD (default: the last bar's date)")
    predict.add_argument("--format", choices=("csv", "json"), default="csv")
    predict.add_argument("--output", default=None, help="a file instead of standard output")
    predict.set_defaults(func=cmd_predict)
    promote = sub.add_parser("promote", help="materialize production_model (a person's decision)")
    promote.add_argument("--reason", default="")
    promote.add_argument("--override", action="store_true")
    promote.set_defaults(func=cmd_promote)
    rollback = sub.add_parser("rollback", help="run rollback_job")
    rollback.add_argument("--version", default="", help="registry version (default: previous)")
    rollback.add_argument("--reason", default="")
    rollback.set_defaults(func=cmd_rollback)
    repair = sub.add_parser(
        "repair", help="finish or undo a crashed registry operation; rebuild models/ exports"
    )
    repair.set_defaults(func=cmd_repair)
    prune = sub.add_parser(
        "prune",
        help="remove old registry versions by the retention policy "
        f"({config.RETENTION_KEEP_LAST_ENV}, {config.RETENTION_KEEP_DAYS_ENV})",
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    prune.set_defaults(func=cmd_prune)
    for name, func, port in (("dev", cmd_dev, 3000), ("mlflow-ui", cmd_mlflow_ui, 5000)):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)
        p.set_defaults(func=func)
    server = sub.add_parser("mlflow-server", help="MLflow tracking server on Postgres")
    server.add_argument("--backend-store-uri", required=True, help="postgresql+psycopg2://...")
    server.add_argument("--artifacts-destination", required=True, help="folder or bucket URI")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument(
        "--allowed-hosts",
        default=os.environ.get(config.MLFLOW_ALLOWED_HOSTS_ENV, ""),
        help="host names clients use besides localhost, private addresses and the tracking "
        f"URI's host, comma-separated (default ${config.MLFLOW_ALLOWED_HOSTS_ENV})",
    )
    server.set_defaults(func=cmd_mlflow_server)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:
        trouble = disk_trouble(exc)
        if trouble is None:
            raise
        print(f"mlplatform {args.command}: {trouble}", file=sys.stderr)
        return 2


_DISK_WORDS = {
    "database or disk is full": "the disk is full",
    "no space left on device": "the disk is full",
    "readonly database": "it is read-only",
    "read-only file system": "it is read-only",
}


def disk_trouble(exc: BaseException) -> str | None:
    """One line for an error the home folder's disk caused (full, read-only), found anywhere in
    the exception's chain; None for any other error."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).lower()
        for words, what in _DISK_WORDS.items():
            if words in text:
                return (
                    f"cannot write the home folder {config.home_dir()}: {what} ({words}). Free "
                    "space or make it writable, then run the command again (`make repair` "
                    "finishes a registry operation it interrupted)"
                )
        seen = seen.__cause__ or seen.__context__
    return None
