"""Indicator maths on bar panels (axis 0 = bar position of one ticker, axis 1 = ticker).

Every function is causal by construction: the value in row i uses rows <= i of the same column
only (shifts go backwards, rolling windows are trailing, EWMs are recursive with adjust=False), so
truncating or changing later bars cannot touch it. Windows that are not yet full give NaN (the
warm-up); divisions by a zero denominator give a documented neutral value instead of inf/NaN.
Inputs and outputs are float64; the caller casts to float32 once, at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from pandas.api.typing import Rolling
from scipy.signal import lfilter

# A standard deviation at or below this (relative to the level) counts as zero: float rounding
# of a constant window must not turn into a random z-score of +-3.
_REL_TOL = 1e-12


def safe_div(
    num: np.ndarray, den: np.ndarray, fill: float, tol: np.ndarray | float = 0.0
) -> np.ndarray:
    """num / den where |den| > tol, `fill` where |den| <= tol, NaN where either is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    small = den == 0.0 if np.isscalar(tol) and tol == 0.0 else np.abs(den) <= tol
    small &= ~np.isnan(num)
    np.copyto(out, fill, where=small)
    return out


def shift(x: np.ndarray, lag: int) -> np.ndarray:
    """x of `lag` bars earlier (NaN for the first `lag` bars)."""
    out = np.full_like(x, np.nan)
    if lag < len(x):
        out[lag:] = x[: len(x) - lag]
    return out


class _PerColumnWindow(BaseIndexer):
    """Trailing windows over a column-major flattened panel that never cross a column boundary.

    One pandas call then covers every ticker; the kernel restarts its running sums at each
    column's first bar (its window does not overlap the previous one), exactly as a separate
    per-ticker call would, so no ticker's value depends on another ticker's bars.
    """

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        n_pos, w = self.n_pos, self.window_size  # type: ignore[attr-defined]
        end = np.arange(1, num_values + 1, dtype=np.int64)
        start = end - w
        head = start.reshape(-1, n_pos)[:, : w - 1]  # a column's first w-1 bars: clip at its start
        np.maximum(head, np.arange(0, num_values, n_pos, dtype=np.int64)[:, None], out=head)
        return start, end


def _rolling(x: np.ndarray, window: int) -> Rolling:
    flat = pd.Series(np.asfortranarray(x).ravel(order="F"))
    indexer = _PerColumnWindow(window_size=window, n_pos=max(x.shape[0], 1))
    return flat.rolling(indexer, min_periods=window)


def _unflatten(values: pd.Series, shape: tuple[int, ...]) -> np.ndarray:
    return values.to_numpy().reshape(shape, order="F")


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    return _unflatten(_rolling(x, window).mean(), x.shape)


def rolling_std(x: np.ndarray, window: int, ddof: int) -> np.ndarray:
    # = pandas rolling std (sqrt of the variance clipped at 0), without its slower wrapper
    out = _unflatten(_rolling(x, window).var(ddof=ddof), x.shape)
    np.maximum(out, 0.0, out=out)
    return np.sqrt(out, out=out)


def ewm_mean(x: np.ndarray, *, alpha: float, min_periods: int) -> np.ndarray:
    """Recursive EWM y[t] = (1 - alpha) y[t-1] + alpha x[t], seeded by each column's first value.

    Same recursion as pandas ewm(adjust=False), run as one IIR filter (scipy lfilter) over all
    columns. Columns must start at the same row (bar panels do; leading NaN rows are skipped)
    and have no NaN inside; NaN padding after a column's last bar only propagates forward.
    """
    first = 0
    while first < len(x) and np.isnan(x[first]).all():
        first += 1
    out = np.full(x.shape, np.nan, order="F")
    if first == len(x):
        return out
    late = np.isnan(x[first])
    if late.any() and not np.isnan(x[:, late]).all():
        raise ValueError("ewm_mean: columns start at different rows")
    body = x[first:].T  # (ticker x bar): filter along the contiguous axis
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], body, axis=1, zi=(1.0 - alpha) * body[:, :1])
    start = first + min_periods - 1
    out[start:] = y.T[min_periods - 1 :]
    return out


def span_alpha(span: int) -> float:
    return 2.0 / (span + 1.0)


def log_return(log_close: np.ndarray, lag: int) -> np.ndarray:
    """log(close[t] / close[t-lag]), as a difference of logs (one log for every lag)."""
    return log_close - shift(log_close, lag)


def realised_vol(log_return_1: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Standard deviation of 1-bar log returns over the last `window` returns (not annualised)."""
    return rolling_std(log_return_1, window, ddof)


def rsi_wilder(close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI in [0, 100]: EWM(alpha=1/window) of gains and losses; 50 for a flat window."""
    delta = close - shift(close, 1)
    gain = np.maximum(delta, 0.0)  # NaN stays NaN
    loss = np.maximum(-delta, 0.0)
    avg_gain = ewm_mean(gain, alpha=1.0 / window, min_periods=window)
    avg_loss = ewm_mean(loss, alpha=1.0 / window, min_periods=window)
    return 100.0 * safe_div(avg_gain, avg_gain + avg_loss, fill=0.5)


def macd(
    close: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal and histogram, each divided by close so they are scale-free.

    The line is (EMA_fast - EMA_slow) / close; the signal is the EMA of that normalised line.
    """
    ema_fast = ewm_mean(close, alpha=span_alpha(fast), min_periods=fast)
    ema_slow = ewm_mean(close, alpha=span_alpha(slow), min_periods=slow)
    line = safe_div(ema_fast - ema_slow, close, fill=0.0)
    sig = ewm_mean(line, alpha=span_alpha(signal), min_periods=signal)
    return line, sig, line - sig


def bollinger_pctb(close: np.ndarray, window: int, n_std: float, ddof: int) -> np.ndarray:
    """%B = (close - lower) / (upper - lower); 0.5 when the band has zero width."""
    mid = rolling_mean(close, window)
    sd = rolling_std(close, window, ddof)
    lower = mid - n_std * sd
    return safe_div(close - lower, 2.0 * n_std * sd, fill=0.5, tol=_REL_TOL * np.abs(mid))


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on a ticker's first bar."""
    prev = shift(close, 1)
    return np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))


def atr_wilder(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's average true range divided by close."""
    atr = ewm_mean(true_range(high, low, close), alpha=1.0 / window, min_periods=window)
    return safe_div(atr, close, fill=0.0)


def volume_zscore(volume: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """z-score of log(1 + volume) against its trailing window (incl. today); 0 if constant."""
    lv = np.log1p(np.maximum(volume, 0.0))
    mean = rolling_mean(lv, window)
    sd = rolling_std(lv, window, ddof)
    return safe_div(lv - mean, sd, fill=0.0, tol=1e-9 * np.maximum(np.abs(mean), 1.0))


def intraday_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """(high - low) / close."""
    return safe_div(high - low, close, fill=0.0)


def overnight_gap(log_open: np.ndarray, log_close: np.ndarray) -> np.ndarray:
    """log(open[t] / close[t-1]); NaN on a ticker's first bar."""
    return log_open - shift(log_close, 1)


def close_location_value(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """((close - low) - (high - close)) / (high - low) in [-1, 1]; 0 for a zero-range bar."""
    return safe_div((close - low) - (high - close), high - low, fill=0.0)


def day_of_week(dates_ns: np.ndarray) -> np.ndarray:
    """Monday = 0 ... Sunday = 6, from datetime64[ns] values (1970-01-01 was a Thursday)."""
    days = dates_ns.astype("datetime64[D]").astype(np.int64)
    return ((days + 3) % 7).astype(np.float64)


def cross_sectional_pct_rank(panel: np.ndarray) -> np.ndarray:
    """Row-wise percentile rank on a (date x ticker) panel, NaN = absent; float32 out.

    (average rank - 0.5) / n over the n tickers present that date, so values lie in (0, 1), ties
    share a value (as pandas rank(method="average")) and a lone ticker gets 0.5. Each row uses
    only its own date's values. One argsort for the whole panel; the tie pass runs only on rows
    that have ties.
    """
    n_cols = panel.shape[1]
    order = np.argsort(panel, axis=1)  # NaN sort last; order within ties is irrelevant
    order += np.arange(0, panel.size, n_cols)[:, None]  # flat offsets
    ordered = panel.ravel().take(order)
    n_present = np.count_nonzero(~np.isnan(ordered), axis=1).astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (np.arange(n_cols, dtype=np.float32) + np.float32(0.5)) / n_present
    same = ordered[:, 1:] == ordered[:, :-1]  # NaN never equals NaN
    tied_rows = np.flatnonzero(same.any(axis=1))
    if tied_rows.size:
        idx = np.arange(n_cols)
        starts = np.ones((tied_rows.size, n_cols), dtype=bool)
        starts[:, 1:] = ~same[tied_rows]
        first = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
        ends = np.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        last = np.minimum.accumulate(np.where(ends, idx, n_cols - 1)[:, ::-1], axis=1)[:, ::-1]
        centre = ((first + last) / 2.0 + 0.5).astype(np.float32)
        pct[tied_rows] = centre / n_present[tied_rows]
    pct[np.arange(n_cols) >= n_present] = np.nan  # the sorted slots where the NaN went
    out = np.empty(panel.shape, dtype=np.float32)
    out.ravel()[order] = pct
    return out
