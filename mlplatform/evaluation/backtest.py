"""Score models side by side on one held-out window: direction metrics and two trading strategies.

Time semantics (DESIGN.md): a prediction for row (t, ticker) is made from data up to close t.
The forward returns (features.labels.outcomes) already encode execution: entry at the next bar's
open, exit at the label bar's close (close[t+1]/open[t+1] − 1 for horizon 1), so the P&L booked
on date t is position_t × forward_return_t and nothing in this module shifts data in time. Every
position is a round trip inside one bar (the overnight gap is never earned), so it pays the one-way
cost twice: cost_bps/1e4 × 2|position_t| per ticker and day; turnover counts both legs.
The portfolio return of a date is the equal-weight mean over the tickers scored that date
(equivalently: rebalanced to equal weights daily, rebalancing itself not charged).

Only horizon 1 is supported: with h > 1 a position decided every day is held h bars, so daily
positions overlap and the P&L needs 1/h-sized overlapping tranches; `run_backtest` refuses h != 1
rather than report an h-times-levered equity curve.

Every model is scored on exactly the same rows: the intersection of all prediction indexes,
the labels and the forward returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.evaluation import metrics as m
from mlplatform.evaluation.slices import SliceKeys, slice_table
from mlplatform.features.layout import INDEX_NAMES, repeats_a_row, values_on

STRATEGIES: tuple[str, ...] = ("long_short", "long_flat")
STRATEGY_METRICS: tuple[str, ...] = (
    "ann_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "psr",
    "dsr",
)
CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "wilson_low",
    "wilson_high",
    "balanced_accuracy",
    "auc",
    "log_loss",
    "brier",
    "p_value_vs_majority",
    "p_value_by_date",
    "window_majority_rate",
    "up_share",
    "down_share",
    "n",
)


# --- inputs -------------------------------------------------------------------------------------
def _as_row_index(index: pd.Index, what: str) -> pd.MultiIndex:
    """A (date, ticker) MultiIndex with datetime dates; levels found by name, else by position."""
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError(
            f"{what}: expected a (date, ticker) MultiIndex, got {type(index).__name__}"
        )
    names = list(index.names)
    if set(INDEX_NAMES) <= set(names) and names != INDEX_NAMES:
        index = index.reorder_levels(INDEX_NAMES)
    if _is_canonical(index):
        out = index  # the platform's own frames: rebuilding cost ~0.1 s per series at 1 M rows
    else:
        dates = pd.DatetimeIndex(pd.to_datetime(index.get_level_values(0)))
        tickers = index.get_level_values(1).astype(str)
        out = pd.MultiIndex.from_arrays([dates, tickers], names=INDEX_NAMES)
    if repeats_a_row(out):
        raise ValueError(f"{what}: duplicate (date, ticker) rows")
    return out


def _is_canonical(index: pd.MultiIndex) -> bool:
    """Named (date, ticker) levels of datetimes and strings: usable as they are."""
    dates, tickers = index.levels
    return (
        list(index.names) == INDEX_NAMES
        and isinstance(dates, pd.DatetimeIndex)
        and pd.api.types.infer_dtype(tickers, skipna=False) in ("string", "empty")
    )


def _as_row_series(series: pd.Series, what: str) -> pd.Series:
    s = pd.Series(np.asarray(series, dtype=float), index=_as_row_index(series.index, what))
    return s


def _align(series: Sequence[pd.Series]) -> tuple[pd.MultiIndex, list[np.ndarray]]:
    """The (date, ticker) rows every series has (none of them NaN), sorted by date then ticker,
    and each series' values on them."""
    first = series[0].index
    index = first if first.is_monotonic_increasing else first.sort_values()
    values = [values_on(s, index) for s in series]
    common = np.logical_and.reduce([~np.isnan(v) for v in values])
    return index[common], [v[common] for v in values]


def _describe(s: pd.Series) -> str:
    if s.empty:
        return "0 rows"
    dates = s.index.get_level_values(0)
    return f"{len(s)} rows, {dates.min().date()}..{dates.max().date()}"


def position(proba: np.ndarray, strategy: str) -> np.ndarray:
    """long_short: +1 if P(up) > 0.5 else −1; long_flat: 1 if P(up) > 0.5 else 0."""
    up = m.predicted_class(proba).astype(float)
    if strategy == "long_short":
        return 2.0 * up - 1.0
    if strategy == "long_flat":
        return up
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def strategy_returns(
    positions: np.ndarray,
    forward_returns: np.ndarray,
    index: pd.MultiIndex,
    cost_bps: float,
    *,
    held_overnight: bool = False,
) -> tuple[pd.Series, pd.Series]:
    """Equal-weight portfolio net return and turnover per date.

    Intraday (default): every position is a round trip inside the bar, both legs charged.
    held_overnight (buy and hold on close-to-close returns): only position changes are charged.
    `index` is sorted by date then ticker.
    """
    if held_overnight:  # each ticker's position on its previous row (0 before its first)
        by_ticker = pd.Series(positions).groupby(np.asarray(index.codes[1]), sort=False)
        trade = np.abs(positions - by_ticker.shift(1).fillna(0.0).to_numpy())
    else:
        trade = 2.0 * np.abs(positions)  # in at the open, out at the close
    # grouped on the dates alone: a column of every row's ticker is only needed above
    frame = pd.DataFrame(
        {
            "date": index.get_level_values(0),
            "net": positions * forward_returns - cost_bps / 1e4 * trade,
            "trade": trade,
        }
    )
    daily = frame.groupby("date", sort=True)[["net", "trade"]].mean()
    return daily["net"], daily["trade"]


# The naive rules every model must beat (`naive_rules`), and the ones that hold their position
# across the close (earning the overnight gap too).
NAIVE_RULES: tuple[str, ...] = (
    "training_majority",
    "always_up",
    "previous_direction",
    "buy_and_hold",
)
TRAINING_MAJORITY, ALWAYS_UP, PREVIOUS_DIRECTION, BUY_AND_HOLD = NAIVE_RULES
HELD_OVERNIGHT = frozenset({BUY_AND_HOLD})


# --- baselines ----------------------------------------------------------------------------------
def naive_rules(rate: float, previous: pd.Series) -> dict[str, pd.Series]:
    """P(up) of the naive rules every model must beat, on `previous.index`, from the training
    up-rate (`up_rate`) and `previous_direction`.

    - training_majority: the training up-rate as a constant probability (so it predicts the training
      majority; a rate of exactly 0.5 predicts "not up", like a tie everywhere).
    - always_up: 1.0.
    - previous_direction: 1.0 if close[t]/close[t−1] − 1 > 0 else 0.0 (known at close t); a row
      without a previous bar gets the training up-rate.
    - buy_and_hold: 1.0 — always long. Its classification metrics equal always_up's; it is listed
      as the strategy benchmark (long-only buy and hold, entered once).
    Hard 0/1 rules score a clipped (large) log loss; that is the honest score of a hard rule.
    """

    def const(value: float, name: str) -> pd.Series:
        return pd.Series(value, index=previous.index, dtype=float, name=name)

    return {
        TRAINING_MAJORITY: const(rate, TRAINING_MAJORITY),
        ALWAYS_UP: const(1.0, ALWAYS_UP),
        PREVIOUS_DIRECTION: previous.fillna(rate).astype(float).rename(PREVIOUS_DIRECTION),
        BUY_AND_HOLD: const(1.0, BUY_AND_HOLD),
    }


def up_rate(train_labels: pd.Series) -> float:
    """The share of up labels among the known ones."""
    labels = np.asarray(train_labels)
    if labels.dtype.kind not in "biu":  # NaN marks an unknown label: float copies, then dropped
        labels = np.asarray(labels, dtype=float)
        labels = labels[~np.isnan(labels)]
    if labels.size == 0:
        raise ValueError("up_rate: train_labels is empty")
    return float(labels.mean())


def previous_direction(prices: pd.DataFrame, test_index: pd.Index) -> pd.Series:
    """1.0 where close[t] rose over the ticker's previous bar, 0.0 where not, NaN without one."""
    index = _as_row_index(test_index, "test_index")
    px = prices.reset_index() if "date" not in prices.columns else prices
    missing = {"date", "ticker", "close"} - set(px.columns)
    if missing:
        raise ValueError(f"previous_direction: prices lack column(s) {sorted(missing)}")
    px = px[["date", "ticker", "close"]].sort_values("date", kind="stable")
    rise = px.groupby("ticker", observed=True)["close"].pct_change(fill_method=None).to_numpy()
    up = np.where(np.isnan(rise), np.nan, (rise > 0).astype(float))
    keys = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex(px["date"]), px["ticker"].astype(str)], names=INDEX_NAMES
    )
    return pd.Series(up, index=keys).reindex(index)


# --- result -------------------------------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    """Plain JSON types: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO dates."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


@dataclass
class BacktestResult:
    """Everything the report and the promotion checks need.

    metrics: model -> {classification keys + "<strategy>_<metric>"} (floats; NaN when undefined).
    equity: index date, columns "model/strategy", compounded net equity (1 before day one).
    returns: the same shape, net portfolio return per date.
    mcnemar: primary vs challenger exact McNemar (statistic, p_value, n_discordant,
    primary_only_correct, challenger_only_correct), None unless both were scored.
    slices: the primary's edge by year, volatility regime and ticker group
    (`slices.slice_table`), None unless the backtest was given the slice keys.
    """

    metrics: dict[str, dict[str, float]]
    equity: pd.DataFrame
    returns: pd.DataFrame
    mcnemar: dict[str, float | int] | None
    window: tuple[pd.Timestamp, pd.Timestamp]
    n_rows: int
    n_tickers: int
    models: tuple[str, ...] = ()
    primary: str = "staging"
    challenger: str = "production"
    cost_bps: float = 0.0
    n_trials: dict[str, int] = field(default_factory=dict)
    periods_per_year: int = 252
    horizon: int = 1
    slices: pd.DataFrame | None = None

    def to_dict(self, *, include_equity: bool = True) -> dict[str, Any]:
        """JSON-safe dict (floats, no NaN/inf: they become None)."""
        out: dict[str, Any] = {
            "models": list(self.models),
            "primary": self.primary,
            "challenger": self.challenger,
            "window": {"start": self.window[0], "end": self.window[1]},
            "n_rows": self.n_rows,
            "n_tickers": self.n_tickers,
            "n_dates": len(self.equity.index),
            "cost_bps": self.cost_bps,
            "n_trials": self.n_trials,
            "periods_per_year": self.periods_per_year,
            "horizon": self.horizon,
            "metrics": self.metrics,
            "mcnemar": self.mcnemar,
        }
        if self.slices is not None:
            out["slices"] = self.slices.to_dict(orient="records")
        if include_equity:
            out["equity"] = {
                "dates": [d.date().isoformat() for d in self.equity.index],
                "series": {c: self.equity[c].tolist() for c in self.equity.columns},
            }
        return _json_safe(out)


# --- the backtest -------------------------------------------------------------------------------
def _trials_for(n_trials: int | Mapping[str, int], model: str) -> int:
    if isinstance(n_trials, Mapping):
        return int(n_trials.get(model, 1))
    return int(n_trials)


@dataclass(frozen=True)
class BacktestSpec:
    """How models are scored: the one-way cost and what the Deflated Sharpe Ratio knows.

    n_trials: the number of trials in the Optuna study; an int applies to every model, a mapping
    gives it per model (models not named count as 1 trial, i.e. DSR = PSR(0), right for
    baselines that were never selected from a search). trial_sharpes: per-period Sharpe ratios
    of those trials, if known (else the DSR's documented fallback variance is used). McNemar's
    test pairs `primary` with `challenger` when both are scored.
    """

    cost_bps: float
    n_trials: int | Mapping[str, int] = 1
    trial_sharpes: Sequence[float] | np.ndarray | None = None
    periods_per_year: int = config.BACKTEST.periods_per_year
    horizon: int = 1
    primary: str = "staging"
    challenger: str = "production"


def run_backtest(
    predictions: Mapping[str, pd.Series],
    labels: pd.Series,
    forward_returns: pd.Series,
    spec: BacktestSpec,
    *,
    hold_returns: pd.Series | None = None,
    slice_keys: SliceKeys | None = None,
) -> BacktestResult:
    """Score every model in `predictions` (name -> P(up) Series) on the same rows, as `spec` says.

    hold_returns: close-to-close returns per row; when given, the models named in
    HELD_OVERNIGHT (buy and hold) earn them, paying costs only when their position changes.
    slice_keys: when given, the result's `slices` break the primary's edge over the naive rules
    down by year, volatility regime and ticker group.
    Raises ValueError when nothing overlaps, a prediction is NaN or outside [0, 1], or h != 1.
    """
    cost_bps, n_trials, horizon = spec.cost_bps, spec.n_trials, spec.horizon
    if horizon != 1:
        raise ValueError(
            f"horizon={horizon}: only horizon 1 is supported "
            "(h > 1 positions overlap; see the module docstring)"
        )
    if not predictions:
        raise ValueError("run_backtest: no predictions given")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")

    preds: dict[str, pd.Series] = {}
    for name, s in predictions.items():
        ps = _as_row_series(s, f"predictions[{name!r}]")
        if ps.isna().any():
            raise ValueError(f"predictions[{name!r}] has {int(ps.isna().sum())} NaN values")
        if ((ps < 0) | (ps > 1)).any():
            raise ValueError(f"predictions[{name!r}] has probabilities outside [0, 1]")
        preds[name] = ps
    y_all = _as_row_series(labels, "labels").dropna()
    fr_all = _as_row_series(forward_returns, "forward_returns").dropna()

    common, (y, fr, *pred_values) = _align([y_all, fr_all, *preds.values()])
    if len(common) == 0:
        parts = [f"labels: {_describe(y_all)}", f"forward_returns: {_describe(fr_all)}"]
        parts += [f"predictions[{k!r}]: {_describe(v)}" for k, v in preds.items()]
        raise ValueError(
            "run_backtest: predictions, labels and forward returns share no (date, ticker) row; "
            + "; ".join(parts)
        )
    y = y.astype(np.int8)
    on_rows = dict(zip(preds, pred_values, strict=True))
    hold_fr = None
    if hold_returns is not None:
        hold = _as_row_series(hold_returns, "hold_returns")
        hold_fr = np.nan_to_num(values_on(hold, common), nan=0.0)
    dates = common.get_level_values(0)

    results: dict[str, dict[str, float]] = {}
    daily_returns: dict[str, pd.Series] = {}
    for name, p in on_rows.items():
        row = m.classification_metrics(y, p)
        row["p_value_by_date"] = m.date_level_p_value(y, p, dates)
        for strategy in STRATEGIES:
            overnight = hold_fr is not None and name in HELD_OVERNIGHT
            net, trade = strategy_returns(
                position(p, strategy),
                hold_fr if overnight and hold_fr is not None else fr,
                common,
                cost_bps,
                held_overnight=overnight,
            )
            sm = m.strategy_metrics(
                net.to_numpy(),
                float(trade.mean()),
                n_trials=_trials_for(n_trials, name),
                periods_per_year=spec.periods_per_year,
                trial_sharpes=spec.trial_sharpes,
            )
            row.update({f"{strategy}_{k}": v for k, v in sm.items()})
            daily_returns[f"{name}/{strategy}"] = net
        results[name] = row
    equity = {key: (1.0 + net).cumprod() for key, net in daily_returns.items()}

    mcnemar = None
    if spec.primary in preds and spec.challenger in preds:
        mcnemar = m.mcnemar_exact(y, on_rows[spec.primary], on_rows[spec.challenger]).to_dict()

    slices = None
    if slice_keys is not None:
        baselines = [name for name in NAIVE_RULES if name in on_rows]
        slices = slice_table(common, y, on_rows, slice_keys, spec.primary, baselines)

    equity_df = pd.DataFrame(equity)
    equity_df.index.name = "date"
    returns_df = pd.DataFrame(daily_returns)
    returns_df.index.name = "date"
    return BacktestResult(
        metrics=results,
        equity=equity_df,
        returns=returns_df,
        mcnemar=mcnemar,
        window=(pd.Timestamp(dates.min()), pd.Timestamp(dates.max())),
        n_rows=len(common),
        n_tickers=int(common.get_level_values(1).nunique()),
        models=tuple(preds),
        primary=spec.primary,
        challenger=spec.challenger,
        cost_bps=float(cost_bps),
        n_trials={k: _trials_for(n_trials, k) for k in preds},
        periods_per_year=int(spec.periods_per_year),
        horizon=horizon,
        slices=slices,
    )
