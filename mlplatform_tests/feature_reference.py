"""A second, independent implementation of the features: a plain per-ticker pandas loop, written
from the definitions, that compute_features must agree with (test_features_compute)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.features import FEATURE_COLUMNS

RANKED = ("ret_1", "ret_5", "ret_21", "vol_21", "volume_z_21", "rsi_14")


def _one_ticker(g: pd.DataFrame) -> pd.DataFrame:
    """Every per-ticker column for one ticker, with plain pandas Series operations."""
    o, h, lo, c, v = g["open"], g["high"], g["low"], g["close"], g["volume"]
    f = pd.DataFrame(index=g.index)
    r1 = np.log(c / c.shift(1))
    for lag in (1, 2, 5, 10, 21):
        f[f"ret_{lag}"] = np.log(c / c.shift(lag))
    for w in (5, 21, 63):
        f[f"vol_{w}"] = r1.rolling(w).std()
    d = c.diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    loss = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    f["rsi_14"] = (100 * gain / (gain + loss)).mask((gain + loss) == 0, 50.0)
    ema12 = c.ewm(span=12, adjust=False, min_periods=12).mean()
    ema26 = c.ewm(span=26, adjust=False, min_periods=26).mean()
    line = (ema12 - ema26) / c
    signal = line.ewm(span=9, adjust=False, min_periods=9).mean()
    f["macd_line"], f["macd_signal"], f["macd_hist"] = line, signal, line - signal
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    f["bb_pctb_20"] = ((c - (mid - 2 * sd)) / (4 * sd)).mask(sd <= 1e-12 * mid.abs(), 0.5)
    pc = c.shift(1)
    tr = pd.concat([h - lo, (h - pc).abs(), (lo - pc).abs()], axis=1).max(axis=1, skipna=False)
    f["atr_14"] = tr.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean() / c
    lv = np.log1p(v)
    m, s = lv.rolling(21).mean(), lv.rolling(21).std()
    f["volume_z_21"] = ((lv - m) / s).mask(s <= 1e-9 * m.abs().clip(lower=1.0), 0.0)
    f["range_hl"] = (h - lo) / c
    f["gap_overnight"] = np.log(o / pc)
    f["clv"] = (((c - lo) - (h - c)) / (h - lo)).mask(h == lo, 0.0)
    f["day_of_week"] = g["date"].dt.dayofweek.astype(float)
    f.index = pd.MultiIndex.from_arrays([g["date"], g["ticker"]])
    return f


def loop_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The straightforward baseline: a Python loop over tickers, then ranks per date."""
    frames = [_one_ticker(g.sort_values("date")) for _, g in prices.groupby("ticker", sort=True)]
    feats = pd.concat(frames).astype(np.float32)
    feats.index.names = ["date", "ticker"]
    warm = np.isfinite(feats).all(axis=1)
    for name in RANKED:
        x = feats[name].where(warm)
        by_date = x.groupby(level="date")
        feats[f"xs_rank_{name}"] = (by_date.rank(method="average") - 0.5) / by_date.transform(
            "count"
        )
    return feats[warm].sort_index()[list(FEATURE_COLUMNS)]
