"""The study, visible: the HTML report of a study's Optuna plots, and `make optuna-dashboard`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import plotly.offline
import pytest

from mlplatform import config
from mlplatform.training.study_report import write_study_report
from mlplatform.training.study_storage import make_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(url: str, name: str, n_trials: int) -> None:
    """A real study in `url`: three parameters of a bowl, TPE-sampled."""

    def bowl(trial: optuna.Trial) -> float:
        x = trial.suggest_float("learning_rate", 0.005, 0.3, log=True)
        leaves = trial.suggest_int("num_leaves", 4, 128, log=True)
        fraction = trial.suggest_float("feature_fraction", 0.3, 1.0)
        return (x - 0.05) ** 2 + (leaves - 16) ** 2 / 1e4 + (fraction - 0.7) ** 2

    study = optuna.create_study(
        study_name=name, storage=make_storage(url), sampler=optuna.samplers.TPESampler(seed=3)
    )
    study.optimize(bowl, n_trials=n_trials)


def test_the_report_is_one_offline_file_with_the_three_plots(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _study(url, "direction:abc", n_trials=15)
    path = write_study_report("direction:abc", url, tmp_path / "reports" / "optuna.html")
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "reports" / "optuna.html"
    plotly_js = plotly.offline.get_plotlyjs()
    assert page.count(plotly_js) == 1  # plotly.js embedded, once
    assert "http" not in page.replace(plotly_js, "")  # nothing else to fetch: no CDN, no URL
    assert page.count('class="plotly-graph-div"') == 3
    for title in ("Optimization History Plot", "Hyperparameter Importances", "Parallel Coordinate"):
        assert title in page
    assert "15 trials, 15 complete" in page


def test_a_one_trial_study_on_a_journal_still_gets_its_report(tmp_path: Path) -> None:
    url = f"journal+file://{tmp_path / 'journal' / 'studies.log'}"  # the platform's URL forms
    _study(url, "short", n_trials=1)
    with pytest.warns(UserWarning, match="too small to compute importances"):
        path = write_study_report("short", url, tmp_path / "short.html")
    page = path.read_text(encoding="utf-8")
    assert page.count('class="plotly-graph-div"') == 3 and "1 trials, 1 complete" in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_optuna_dashboard_serves_the_platforms_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna' / 'studies.db'}"
    _study(url, "direction:abc", n_trials=3)
    port = _free_port()
    # `-o install`: use this interpreter's environment instead of making the project's .venv
    command = ["make", "-o", "install", "optuna-dashboard"]
    command += [f"BIN={Path(sys.executable).parent}", f"OPTUNA_PORT={port}"]
    server = subprocess.Popen(
        command,
        cwd=config.PROJECT_ROOT,
        env={**os.environ, config.OPTUNA_STORAGE_ENV: url},
        start_new_session=True,  # make and the server: one process group to stop
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"the dashboard exited: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as response:
                    studies = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)  # not up yet
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    (summary,) = studies["study_summaries"]
    assert summary["study_name"] == "direction:abc"
