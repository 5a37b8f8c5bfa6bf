"""Where the edge lives: the walk-forward comparison broken down by year, by the market's
volatility regime and by ticker group, from the same out-of-sample rows the backtest scored.

A slice puts a row (t, ticker) in a group from what was known at close t, so no slice is chosen
with hindsight:

- year: the calendar year of t.
- volatility regime: the market's realised volatility at close t, the standard deviation of the
  equal-weight mean close-to-close return over the last `config.SLICES.regime_window` bars (bar t
  included, none after it), cut at its terciles over the bars before the evaluation window
  (low / mid / high). The terciles are fixed before the window opens, so a later return never
  moves an earlier day's regime; a window calmer or wilder than its past shows uneven regimes.
- ticker group: terciles of each ticker's own realised volatility (the standard deviation of its
  daily returns) over the bars before the evaluation window. The platform's bars carry no sector
  column (the price schema drops extra columns at load), so volatility is the grouping it has;
  tickers with fewer than two returns before the window form their own group.

Each slice scores the primary model's accuracy and AUC beside every other model's accuracy, and
the edge over the best naive baseline *in that slice* (a hindsight pick, so the edge is a
conservative one). Rows of one date share the market's move, so the edge's standard error takes
dates as the unit, like `metrics.date_level_p_value`: the standard error of the per-date edges.
A slice below `config.SLICES`' minimum rows or dates says so and shows no figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.data.schema import in_canonical_order
from mlplatform.evaluation import metrics as m

WHOLE, YEAR, REGIME, GROUP = "all", "year", "volatility regime", "ticker group"
TERCILES = ("low", "mid", "high")
NO_HISTORY = "under two returns before the window"


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


@dataclass(frozen=True)
class SliceKeys:
    """The volatility regime of every date and the group of every ticker (ordered categoricals,
    low to high), set from the bars up to each date and the bars before the evaluation window."""

    regime: pd.Series  # date -> regime
    group: pd.Series  # ticker -> group

    @classmethod
    def from_prices(cls, prices: pd.DataFrame, start: date) -> SliceKeys:
        """Regimes and groups from daily bars (columns date, ticker, close) and the first date
        of the evaluation window."""
        px = prices[["date", "ticker", "close"]]
        if not in_canonical_order(prices):  # the platform's bars are; a ticker's must be in order
            px = px.sort_values(["ticker", "date"], kind="stable")
        ret = px.groupby("ticker", observed=True, sort=False)["close"].pct_change(fill_method=None)
        before = (px["date"] < pd.Timestamp(start)).to_numpy()
        market = ret.groupby(px["date"], sort=True).mean()
        window = config.SLICES.regime_window
        vol = market.rolling(window, min_periods=window).std()
        low, high = vol[vol.index < pd.Timestamp(start)].quantile([1 / 3, 2 / 3])
        if np.isnan(low):
            raise ValueError(
                f"slices: fewer than {window} market returns before the evaluation window "
                f"({start}) to set the volatility terciles"
            )
        regimes = [
            f"low (≤ {_percent(low)})",
            f"mid ({_percent(low)} to {_percent(high)})",
            f"high (> {_percent(high)})",
        ]
        regime = pd.cut(vol, [-np.inf, low, high, np.inf], labels=regimes).dropna()

        own = ret[before].groupby(px["ticker"][before], observed=True).std().dropna()
        own.index = own.index.astype(str)
        tercile = pd.cut(own.rank(pct=True, method="first"), [0, 1 / 3, 2 / 3, 1], labels=TERCILES)
        group = tercile.reindex(pd.Index(px["ticker"].unique()).astype(str))
        if group.isna().any():
            group = group.cat.add_categories(NO_HISTORY).fillna(NO_HISTORY)
        counts = group.value_counts()
        group = group.cat.rename_categories(
            {c: f"{c}{' vol' if c in TERCILES else ''} ({counts[c]} tickers)" for c in counts.index}
        )
        return cls(regime=regime, group=group)


def _too_few(rows: int, dates: int) -> str | None:
    """Why a slice of this size shows no figures, or None when it is big enough."""
    minimums = config.SLICES
    if rows < minimums.min_rows:
        return f"too few rows: {rows:,} < {minimums.min_rows:,}"
    if dates < minimums.min_dates:
        return f"too few dates: {dates:,} < {minimums.min_dates:,}"
    return None


def slice_table(
    index: pd.MultiIndex,
    y: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    keys: SliceKeys,
    primary: str,
    baselines: Sequence[str],
) -> pd.DataFrame:
    """One row per slice: kind, slice, rows, dates, the primary model's accuracy and AUC, every
    other model's accuracy, the best baseline, the primary's edge over it and that edge's
    standard error (dates as the unit), and a note saying why a small slice has no figures.

    `index` (date, ticker), `y` and each prediction are the backtest's aligned rows;
    `baselines` name the naive rules among `predictions` the edge is measured against.
    """
    if primary not in predictions:
        raise ValueError(f"slices: the primary model {primary!r} was not scored")
    baselines = [b for b in baselines if b in predictions]
    if not baselines:
        raise ValueError("slices: no baseline was scored to measure the edge against")
    models = list(predictions)
    others = [name for name in models if name != primary]
    frame = pd.DataFrame({name: m.predicted_class(p) == y for name, p in predictions.items()})
    frame = frame.astype(float)
    dates = index.codes[0]  # the date of each row as an integer: cheaper to group by
    frame["date"] = dates
    slices = _slices(index, keys)

    rows: list[dict[str, object]] = []
    for kind, members_of in slices.items():
        grouped = frame.groupby(members_of, observed=False)
        accuracy = grouped[models].mean()
        counts = grouped["date"].agg(["size", "nunique"])
        # one mean per (slice, date): the unit of the edge's standard error
        per_date = frame.groupby([members_of, dates], observed=True, sort=False)[models].mean()
        for code, label in enumerate(members_of.categories):
            n_rows, n_dates = (int(v) for v in counts.loc[label])
            reason = _too_few(n_rows, n_dates)
            row: dict[str, object] = {
                "kind": kind,
                "slice": str(label),
                "rows": n_rows,
                "dates": n_dates,
                "note": reason or "",
            }
            if reason is None:
                acc = accuracy.loc[label]
                best = max(baselines, key=lambda b: acc[b])
                members = members_of.codes == code
                edges = per_date.loc[label]
                row[f"{primary}_accuracy"] = acc[primary]
                row[f"{primary}_auc"] = m.auc(y[members], predictions[primary][members])
                row.update({f"{name}_accuracy": acc[name] for name in others})
                row["best_baseline"] = best
                row["edge"] = acc[primary] - acc[best]
                row["edge_se"] = (edges[primary] - edges[best]).sem(ddof=1)
            rows.append(row)
    columns = [
        "kind",
        "slice",
        "rows",
        "dates",
        f"{primary}_accuracy",
        f"{primary}_auc",
        *(f"{name}_accuracy" for name in others),
        "best_baseline",
        "edge",
        "edge_se",
        "note",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def _slices(index: pd.MultiIndex, keys: SliceKeys) -> dict[str, pd.Categorical]:
    """Each kind's slice of every row, as categoricals (empty slices stay listed)."""
    dates = index.get_level_values(0)
    years = dates.year
    return {
        WHOLE: pd.Categorical.from_codes(np.zeros(len(index), dtype=np.int8), ["all rows"]),
        YEAR: pd.Categorical(years, categories=np.unique(years)).rename_categories(str),
        REGIME: pd.Categorical(keys.regime.reindex(dates)),
        GROUP: pd.Categorical(keys.group.reindex(index.get_level_values(1))),
    }
