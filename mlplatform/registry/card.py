"""The model card: what a version is for, what it learnt from, how it did, who let it serve.

Rendered from what the registry holds about a version (the metadata registered with it and its
tags), so every copy says the same thing and can be rebuilt at any time: the export folders get
it from the projection (models/*/MODEL_CARD.md), the version's MLflow run keeps one beside the
model (`model_card/MODEL_CARD.md`), rewritten when the registry learns more (the evaluation, a
promotion, a rollback). No timestamps of its own: the same facts give the same card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlplatform import config
from mlplatform.registry.export import CARD_FILE
from mlplatform.registry.store import (
    TAG_ARCHIVED_AT,
    TAG_OVERRIDE,
    TAG_PREVIOUS_PRODUCTION,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_REASON,
    TAG_ROLLBACK_FROM,
    TAG_ROLLBACK_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TAG_SEMVER,
    sha256_text,
)

CARD_ARTIFACT = f"model_card/{CARD_FILE}"  # in the version's MLflow run
TAG_CARD_SHA256 = "model_card_sha256"  # of the card last written to the run
# Written by the evaluation: staging's and every contender's headline figures, and each criterion.
TAG_WALK_FORWARD = "walk_forward"
TAG_CRITERIA = "criteria"
TAG_VERDICT = "verdict"
TAG_SLICES = "slices"  # staging's edge by year, volatility regime and ticker group
WALK_FORWARD_METRICS = ("accuracy", "auc", "log_loss", "brier", "long_short_sharpe")

# The tags a card (and an export's metadata.json) is made of: an export whose copy of these
# differs from the registry's is rebuilt. Tags that change daily (shadow records) are not here.
CARD_TAGS = (
    TAG_SEMVER,
    TAG_VERDICT,
    TAG_WALK_FORWARD,
    TAG_SLICES,
    TAG_CRITERIA,
    TAG_PROMOTED_BY,
    TAG_PROMOTED_AT,
    TAG_PROMOTION_REASON,
    TAG_OVERRIDE,
    TAG_PREVIOUS_PRODUCTION,
    TAG_ROLLED_BACK_BY,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLBACK_REASON,
    TAG_ROLLBACK_FROM,
    TAG_ARCHIVED_AT,
)

INTENDED_USE = """\
Ranks instruments by the probability that their close {horizon} trading day(s) ahead is above
today's close, from daily OHLCV bars, once per day after the close. Use it as one input to a
daily long/short or screening decision, with its costs.

Not for intraday decisions, position sizing on its own, or instruments, frequencies and markets
unlike the data below. Daily direction is close to a coin toss: honest models score about
50-53 % accuracy out of sample. An accuracy of 65 % here would not mean a better model; it would
mean look-ahead leakage (a feature that sees the future), and the evaluation warns above its
leakage alarm."""


def card_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: tags[key] for key in CARD_TAGS if key in tags}


def walk_forward(tags: Mapping[str, str]) -> dict[str, dict[str, float]]:
    return json.loads(tags[TAG_WALK_FORWARD]) if TAG_WALK_FORWARD in tags else {}


def walk_forward_tag(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every contender's headline figures, as the evaluation records them on the version."""
    figures = {
        model: {
            key: round(float(values[key]), 4)
            for key in WALK_FORWARD_METRICS
            if values.get(key) is not None
        }
        for model, values in metrics.items()
    }
    return {TAG_WALK_FORWARD: json.dumps(figures)}


def slices_tag(slices: Sequence[Mapping[str, Any]], primary: str) -> dict[str, str]:
    """Each slice's size and, when it is big enough, the primary model's accuracy and AUC, the
    best baseline and its accuracy, and the edge over it with its standard error (compact JSON:
    a few kB, far below MLflow's limit on a version tag)."""

    def figure(value: Any) -> float | None:
        return None if value is None or not math.isfinite(value) else round(float(value), 4)

    rows = []
    for s in slices:
        row = {"kind": s["kind"], "slice": s["slice"], "rows": s["rows"], "dates": s["dates"]}
        if s["note"]:
            row["note"] = s["note"]
        else:
            baseline = s["best_baseline"]
            row.update(
                accuracy=figure(s[f"{primary}_accuracy"]),
                auc=figure(s[f"{primary}_auc"]),
                baseline=baseline,
                baseline_accuracy=figure(s[f"{baseline}_accuracy"]),
                edge=figure(s["edge"]),
                edge_se=figure(s["edge_se"]),
            )
        rows.append(row)
    return {TAG_SLICES: json.dumps(rows, separators=(",", ":"), ensure_ascii=False)}


def criteria_tags(verdict: str, criteria: list[tuple[str, bool, bool, str]]) -> dict[str, str]:
    """The verdict and each criterion (name, passed, blocking, figures in words)."""
    return {TAG_VERDICT: verdict, TAG_CRITERIA: json.dumps(criteria)}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def _figure(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _slice_rows(slices: list[dict[str, Any]]) -> list[list[str]]:
    """The card's cells of each slice: figures, or a dash and the reason there are none."""
    rows = []
    for s in slices:
        size = [s["kind"], s["slice"], f"{s['rows']:,}", f"{s['dates']:,}"]
        if "note" in s:
            rows.append([*size, "-", "-", "-", "-", s["note"]])
            continue
        edge = "-" if s["edge"] is None else f"{s['edge'] * 100:+.2f}"
        se = "" if s["edge_se"] is None else f" ± {s['edge_se'] * 100:.2f}"
        baseline = f"{s['baseline']} {_figure(s['baseline_accuracy'])}"
        rows.append(
            [*size, _figure(s["accuracy"]), _figure(s["auc"]), baseline, f"{edge}{se} pp", ""]
        )
    return rows


def _window(raw: Any) -> str:
    window = json.loads(raw) if isinstance(raw, str) else raw or {}
    return f"{window.get('start', '?')} to {window.get('end', '?')}"


def render(metadata: Mapping[str, Any], tags: Mapping[str, str], name: str, version: str) -> str:
    """The card of `name` v`version` from its registered metadata and its tags."""
    data = metadata.get("data", {})
    lines = [
        f"# Model card: {name} v{version} ({tags.get(TAG_SEMVER, '?')})",
        "",
        "## Intended use and limits",
        "",
        INTENDED_USE.format(horizon=metadata.get("horizon", "?")),
        "",
        "## Data",
        "",
        f"- source: {data.get('source', 'not recorded')}",
        f"- fingerprint: {metadata.get('data_fingerprint', 'not recorded')}",
        f"- tickers: {data.get('tickers', '?')}; bars: {data.get('bars', '?')}; "
        f"dates: {data.get('first_date', '?')} to {data.get('last_date', '?')}",
        "",
        "## Windows",
        "",
        f"- training (refit): {_window(metadata.get('training_window'))}; "
        f"{metadata.get('training_rows', '?')} rows",
        f"- tuning: {metadata.get('tuning_trials', '?')} Optuna trials (study "
        f"{metadata.get('tuning_study', '?')}) on walk-forward folds before the evaluation window",
        f"- evaluation (never seen by tuning): {_window(metadata.get('evaluation_window'))}",
        "",
        "## Features and label",
        "",
        f"- label: {metadata.get('label_definition', '?')}",
        f"- features ({len(metadata.get('features', []))}): "
        + ", ".join(f"`{f}`" for f in metadata.get("features", [])),
        f"- LightGBM parameters: `{json.dumps(metadata.get('params', {}), sort_keys=True)}`",
        "",
        "## Walk-forward evaluation (out of sample, with its baselines)",
        "",
    ]
    figures = walk_forward(tags)
    if figures:
        lines += _table(
            ["model", *WALK_FORWARD_METRICS],
            [
                [model, *(f"{values[m]:.4f}" if m in values else "-" for m in WALK_FORWARD_METRICS)]
                for model, values in figures.items()
            ],
        )
    else:
        lines.append("Not evaluated yet: backtest_report has not run on this version.")
    lines += ["", "## Where the edge lives", ""]
    if TAG_SLICES in tags:
        lines += [
            "The same out-of-sample rows by calendar year, by the market's volatility regime (the "
            "equal-weight market's realised volatility over the last "
            f"{config.SLICES.regime_window} bars, cut at its terciles before the window) and by "
            "ticker group (terciles of each ticker's volatility before the window). Edge: "
            "accuracy minus the best naive baseline's in that slice, ± one standard error with "
            "dates as the unit. Slices too small to judge say so and show no figures.",
            "",
            *_table(
                [
                    "kind",
                    "slice",
                    "rows",
                    "dates",
                    "accuracy",
                    "AUC",
                    "best baseline",
                    "edge",
                    "note",
                ],
                _slice_rows(json.loads(tags[TAG_SLICES])),
            ),
        ]
    else:
        lines.append("Not evaluated yet: backtest_report has not run on this version.")
    lines += ["", "## Promotion criteria", ""]
    if TAG_CRITERIA in tags:
        lines += _table(
            ["criterion", "result", "figures"],
            [
                [c_name, ("pass" if passed else "FAIL" if blocking else "warning"), text]
                for c_name, passed, blocking, text in json.loads(tags[TAG_CRITERIA])
            ],
        )
        lines += ["", f"Verdict: {tags.get(TAG_VERDICT, 'not recorded')}"]
    else:
        lines.append("Not evaluated yet.")
    lines += ["", "## Promotion", ""]
    if TAG_PROMOTED_AT in tags:
        override = tags.get(TAG_OVERRIDE) == "true"
        lines += [
            f"- promoted by {tags.get(TAG_PROMOTED_BY, '?')} at {tags[TAG_PROMOTED_AT]}",
            f"- reason: {tags.get(TAG_PROMOTION_REASON) or 'none given'}",
            f"- override of failed checks: {'yes' if override else 'no'}",
            f"- previous production: v{tags.get(TAG_PREVIOUS_PRODUCTION) or 'none'}",
        ]
    else:
        lines.append("Never promoted.")
    if TAG_ROLLED_BACK_AT in tags:
        lines.append(
            f"- rolled back to by {tags.get(TAG_ROLLED_BACK_BY, '?')} at "
            f"{tags[TAG_ROLLED_BACK_AT]} from v{tags.get(TAG_ROLLBACK_FROM, '?')}: "
            f"{tags.get(TAG_ROLLBACK_REASON) or 'no reason given'}"
        )
    if TAG_ARCHIVED_AT in tags:
        lines.append(f"- left production at {tags[TAG_ARCHIVED_AT]}")
    return "\n".join(lines) + "\n"


def publish_card(client: MlflowClient, mv: ModelVersion, card: str) -> bool:
    """Keep the card beside the model in the version's run; True when it was (re)written."""
    digest = sha256_text(card)
    if mv.tags.get(TAG_CARD_SHA256) == digest or not mv.run_id:
        return False
    client.log_text(mv.run_id, card, CARD_ARTIFACT)
    client.set_model_version_tag(mv.name, str(mv.version), TAG_CARD_SHA256, digest)
    return True
