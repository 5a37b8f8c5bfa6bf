"""Features and labels for next-bar direction, computed from daily OHLCV bars (no Dagster here).

Time rule: the row (date t, ticker) uses only that ticker's bars at or before t's close, plus, for
cross-sectional ranks, other tickers' features of the same date t. Proven by tests that truncate
or perturb history after t. Features (per ticker, bars counted per ticker; float32):

- ret_{1,2,5,10,21}: log(close[t] / close[t-k]), log return over k bars.
- vol_{5,21,63}: sample std (ddof 1) of 1-bar log returns over the last w returns, not annualised.
- rsi_14: Wilder RSI in [0, 100] (EWM alpha 1/14 of gains and losses); 50 on a flat window.
- macd_line: (EMA12 - EMA26) / close, scale-free MACD line.
- macd_signal: EMA9 of macd_line.
- macd_hist: macd_line - macd_signal.
- bb_pctb_20: Bollinger %B, (close - lower) / (upper - lower), bands SMA20 +- 2 population std;
  0.5 when the band width is zero.
- atr_14: Wilder average true range (EWM alpha 1/14) / close.
- volume_z_21: z-score of log(1 + volume) against its trailing 21 bars (incl. t); 0 if constant.
- range_hl: (high - low) / close, intraday range.
- gap_overnight: log(open[t] / close[t-1]).
- clv: close-location value ((close - low) - (high - close)) / (high - low); 0 for zero range.
- day_of_week: Monday 0 ... Friday 4.
- xs_rank_{ret_1, ret_5, ret_21, vol_21, volume_z_21, rsi_14}: percentile rank of that feature
  among the warmed-up tickers present on date t, (average rank - 0.5) / n in (0, 1); a lone
  ticker gets 0.5, so the schema does not change with the number of tickers.

Warm-up rows (any window not yet full; the longest is vol_63, so a ticker's first 63 bars) are
dropped. EWM-based features are seeded by a ticker's first bar (path dependence from the start of
history, never from the future). `compute_features(prices, drop_warmup=False)` keeps every row,
NaN during warm-up, for the leakage tests. Bad frames (missing column, duplicate row, NaN/inf
bar) raise mlplatform.data.DataValidationError.

Public API: compute_features, dropped_tickers, outcomes, make_labels (labels.py),
FEATURE_COLUMNS, FEATURE_SPEC, FEATURE_VERSION, LABEL_DEFINITION, feature_schema_hash,
feature_description (schema.py).
"""

from mlplatform.features.compute import compute_features, dropped_tickers
from mlplatform.features.labels import make_labels, outcomes
from mlplatform.features.schema import (
    FEATURE_COLUMNS,
    FEATURE_SPEC,
    FEATURE_VERSION,
    LABEL_DEFINITION,
    feature_description,
    feature_schema_hash,
)

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_SPEC",
    "FEATURE_VERSION",
    "LABEL_DEFINITION",
    "compute_features",
    "dropped_tickers",
    "feature_description",
    "feature_schema_hash",
    "make_labels",
    "outcomes",
]
