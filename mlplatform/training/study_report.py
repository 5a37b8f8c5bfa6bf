"""The study, visible: Optuna's optimization history, parameter importances and parallel
coordinates in one self-contained HTML file per retrain, and Optuna's dashboard over the same
storage (`make optuna-dashboard`).

The file embeds plotly.js once and loads nothing from a CDN: the machine that writes it and the
people who open it may be offline. Dagster-free: tuned_params writes it beside the other reports.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import optuna
import optuna_dashboard
import plotly.graph_objects as go
import plotly.offline
from optuna.trial import TrialState

from mlplatform import config
from mlplatform.training.study_storage import make_storage

FIGURES = (
    ("Optimization history", optuna.visualization.plot_optimization_history),
    ("Parameter importances", optuna.visualization.plot_param_importances),
    ("Parallel coordinates", optuna.visualization.plot_parallel_coordinate),
)


def _figure_html(title: str, figure: go.Figure) -> str:
    return f"<h2>{html.escape(title)}</h2>\n" + figure.to_html(
        full_html=False, include_plotlyjs=False
    )


def write_study_report(study_name: str, storage_url: str, path: Path) -> Path:
    """Write the study's three Optuna plots to the HTML file `path` (folders made); `path`.
    A study too short for a plot still gets its report (Optuna draws what there is)."""
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sections = [_figure_html(title, plot(study)) for title, plot in FIGURES]
    best = (
        f"best value {study.best_value:.6f} (trial {study.best_trial.number})"
        if complete
        else "no complete trial"
    )
    name = html.escape(study_name)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Optuna study {name}</title>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n<body>\n"
        f"<h1>Optuna study {name}</h1>\n"
        f"<p>{len(study.trials)} trials, {len(complete)} complete; {best}</p>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def serve_dashboard(storage_url: str, host: str, port: int) -> None:
    """Optuna's dashboard over `storage_url` (any URL make_storage takes, journals included),
    until interrupted."""
    optuna_dashboard.run_server(make_storage(storage_url), host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    """`make optuna-dashboard`: the dashboard over the platform's study storage."""
    parser = argparse.ArgumentParser(description="Optuna's dashboard over the platform's studies")
    parser.add_argument("--storage", default=None, help="default: config.optuna_storage_url()")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    serve_dashboard(args.storage or config.optuna_storage_url(), args.host, args.port)


if __name__ == "__main__":
    main()
