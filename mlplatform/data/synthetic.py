"""A synthetic daily stock market with a planted, exactly known predictable component.

Why synthetic: tests and demos need data that looks like a market (fat tails, volatility
clustering, a common factor, volume reacting to moves, consistent OHLC bars) *and* a known
ceiling on skill, so a model's backtest accuracy can be judged against the Bayes-optimal one
instead of argued about.

Model, per ticker i and business day t (all days from the fixed epoch 2000-01-03):

* market variance h_m and idiosyncratic variance h_i follow GARCH(1,1) recursions, so
  sigma_t^2 = beta_i^2 h_m,t + h_i,t is known at close t-1;
* the standardised log return is z_t = mu_t + eps_t with eps_t = (beta_i sqrt(h_m) m_t +
  sqrt(h_i) e_t) / sigma_t, m and e independent N(0, 1), so eps_t is exactly N(0, 1) given the
  past while tickers share the market shock;
* mu_t = b * s_{t-1} + c_i (+ a drift shift after the regime date), where s is a bounded signal
  of information at the previous close: 0.75 tanh(-z) (one-day reversal of the vol-standardised
  return) + 0.25 tanh(sum of the four returns before it / 2) (short momentum);
* the log return is r_t = k_t v_t sigma_t z_t (1 + a_i [z_t < 0]): k_t the regime volatility
  multiplier, v_t a lognormal scale shock with E[v^2] = 1 (fatter tails), a_i >= 0 makes down
  days larger (negative skew) so the price drift is a realistic 0-10 % a year although up days
  are 51-52 % of all. None of these positive factors changes the sign of r_t.

Hence P(close_t > close_{t-1} | close t-1) = Phi(mu_t) exactly; `prob_up` holds it for the next
bar. Random streams are keyed by (seed, ticker) via numpy SeedSequence and consumed in whole
calendar years from the epoch, where the recursion always starts, so every bar is a
deterministic function of (seed, date, ticker): a later `as_of` adds bars and leaves common
dates bit-identical, and more tickers leave existing ones unchanged. Calendar: Monday to
Friday, no holidays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from mlplatform import config
from mlplatform.data.schema import PRICE_COLUMNS

# The first business day of its year: every stream starts on the epoch's year (a test checks it).
EPOCH = np.datetime64("2000-01-03", "D")
_TAG_STATIC, _TAG_DAILY, _TAG_MARKET = 1, 2, 3
_N_DAILY_DRAWS = 6  # idiosyncratic shock, overnight gap, high, low, volume noise, scale shock

# GARCH(1,1): (unconditional daily variance, alpha, beta)
_MARKET_GARCH = (0.009**2, 0.08, 0.90)
_IDIO_ALPHA, _IDIO_BETA = 0.08, 0.90
_IDIO_VOL_RANGE = (0.008, 0.018)
_SCALE_SHOCK_SD = 0.35  # lognormal variance mixture on top of GARCH: fatter tails
DEFAULT_SIGNAL_STRENGTH = 0.38  # Bayes accuracy about 0.565
DEFAULT_DRIFT_RANGE = (0.01, 0.06)  # c_i, shifts P(up) to about 0.515 on average
_ANNUAL_LOG_DRIFT_RANGE = (0.0, 0.10)  # what down-day amplification tunes the price drift to
DEFAULT_BETA_RANGE = (0.5, 1.5)
DEFAULT_REGIME_DRIFT_SHIFT = -0.08


MAX_TICKERS = 10_000


def _ticker_name(index: int) -> str:
    return f"T{index:04d}"


def _as_day(value: Any) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).normalize().date(), "D")


@dataclass(frozen=True)
class SyntheticMarket:
    """Prices plus the truth about them."""

    prices: pd.DataFrame
    prob_up: pd.Series  # P(close[t+1] > close[t] | everything known at close t), (date, ticker)
    bayes_accuracy: float  # E[max(p, 1 - p)] over rows whose next bar exists
    up_rate: float  # E[p] over the same rows: the expected accuracy of "always up"
    seed: int
    n_tickers: int
    years: int
    as_of: pd.Timestamp
    regime_change: pd.Timestamp | None
    regime_vol_multiplier: float
    regime_drift_shift: float
    signal_strength: float
    parameters: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-safe facts for metadata (Dagster, MLflow)."""
        dates = self.prices["date"]
        return {
            "generator": "mlplatform.data.synthetic",
            "seed": self.seed,
            "n_tickers": self.n_tickers,
            "years": self.years,
            "as_of": self.as_of.strftime("%Y-%m-%d"),
            "first_date": dates.min().strftime("%Y-%m-%d"),
            "last_date": dates.max().strftime("%Y-%m-%d"),
            "n_rows": len(self.prices),
            "regime_change": None
            if self.regime_change is None
            else self.regime_change.strftime("%Y-%m-%d"),
            "regime_vol_multiplier": self.regime_vol_multiplier,
            "regime_drift_shift": self.regime_drift_shift,
            "signal_strength": self.signal_strength,
            "bayes_accuracy": round(self.bayes_accuracy, 6),
            "always_up_expected_accuracy": round(self.up_rate, 6),
            **self.parameters,
        }


def _business_days(year: int) -> np.ndarray:
    days = np.arange(
        np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"), dtype="datetime64[D]"
    )
    return days[np.is_busday(days)]


def generate_market(
    *,
    seed: int = config.SYNTHETIC.seed,
    n_tickers: int = config.SYNTHETIC.n_tickers,
    years: int = config.SYNTHETIC.years,
    as_of: Any = None,
    regime_change: Any = None,
    regime_vol_multiplier: float = 2.5,
    regime_drift_shift: float = DEFAULT_REGIME_DRIFT_SHIFT,
    signal_strength: float = DEFAULT_SIGNAL_STRENGTH,
    drift_range: tuple[float, float] = DEFAULT_DRIFT_RANGE,
    beta_range: tuple[float, float] = DEFAULT_BETA_RANGE,
) -> SyntheticMarket:
    """Bars for `n_tickers` over the `years` up to `as_of` (default today), inclusive.

    From `regime_change` on, returns are `regime_vol_multiplier` times as volatile and the mean
    of the standardised return shifts by `regime_drift_shift` (so P(up) shifts too).
    `beta_range=(0, 0)` gives independent tickers (handy for exact statistical tests).
    """
    if seed < 0 or n_tickers < 1 or years < 1:
        raise ValueError("seed must be >= 0, n_tickers >= 1 and years >= 1")
    if n_tickers > MAX_TICKERS:  # T10000 would sort before T9999: the frame's order breaks
        raise ValueError(f"n_tickers is at most {MAX_TICKERS:,} (names T0000 to T9999)")
    as_of_ts = pd.Timestamp.today().normalize() if as_of is None else pd.Timestamp(as_of)
    as_of_ts = as_of_ts.tz_localize(None) if as_of_ts.tz is not None else as_of_ts
    as_of_ts = as_of_ts.normalize()
    end = _as_day(as_of_ts)
    if end < EPOCH:
        raise ValueError(f"as_of must be on or after {EPOCH}")
    start = max(_as_day(as_of_ts - pd.DateOffset(years=years)), EPOCH)
    regime_ts = None if regime_change is None else pd.Timestamp(regime_change).normalize()
    regime_day = None if regime_ts is None else _as_day(regime_ts)

    # --- per-ticker constants, keyed by (seed, ticker) ---------------------------------------
    static = np.array(
        [
            np.random.default_rng(np.random.SeedSequence([seed, _TAG_STATIC, i])).random(6)
            for i in range(n_tickers)
        ]
    )
    beta = beta_range[0] + (beta_range[1] - beta_range[0]) * static[:, 0]
    idio_var = (_IDIO_VOL_RANGE[0] + np.diff(_IDIO_VOL_RANGE)[0] * static[:, 1]) ** 2
    drift = drift_range[0] + (drift_range[1] - drift_range[0]) * static[:, 2]
    log_price = np.log(10.0) + np.log(20.0) * static[:, 3]  # 10 .. 200 at the epoch
    log_volume = np.log(2e5) + np.log(100.0) * static[:, 4]  # 2e5 .. 2e7 shares a day

    m_var, m_alpha, m_beta = _MARKET_GARCH
    typical_sd = np.sqrt(beta * beta * m_var + idio_var)
    log_drift = _ANNUAL_LOG_DRIFT_RANGE[0] + np.diff(_ANNUAL_LOG_DRIFT_RANGE)[0] * static[:, 5]
    # E[z (1 + a [z < 0])] ~= c - 0.399 a for z ~ N(c, 1): choose a to hit the price drift
    down_boost = np.maximum(0.0, (drift - log_drift / 252.0 / typical_sd) / 0.3989)
    m_omega = m_var * (1 - m_alpha - m_beta)
    i_omega = idio_var * (1 - _IDIO_ALPHA - _IDIO_BETA)

    # --- state carried from day to day ------------------------------------------------------
    h_m, f_prev = m_var, 0.0
    h_i, idio_prev = idio_var.copy(), np.zeros(n_tickers)
    z_prev = np.zeros(n_tickers)
    past4 = np.zeros((4, n_tickers))  # z of the four days before z_prev (ring buffer)
    sum4 = np.zeros(n_tickers)
    beta2 = beta * beta

    def signal() -> np.ndarray:
        return 0.75 * np.tanh(-z_prev) + 0.25 * np.tanh(sum4 * 0.5)

    # One generator per ticker and one for the market, consumed in whole calendar years from the
    # epoch: the draws of a year never depend on as_of or on how many tickers there are.
    ticker_rngs = [
        np.random.default_rng(np.random.SeedSequence([seed, _TAG_DAILY, i]))
        for i in range(n_tickers)
    ]
    market_rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_MARKET]))

    # Every business day from the epoch (the first of its year) to as_of, year by year.
    calendar = [_business_days(y) for y in range(int(str(EPOCH)[:4]), int(str(end)[:4]) + 1)]
    calendar = [year_days for year_days in calendar if year_days[0] <= end]
    dates = np.concatenate([d[(d >= start) & (d <= end)] for d in calendar]).astype(
        "datetime64[ns]"
    )
    n_days = len(dates)
    # Written year by year where they end up: each column ticker-major (every ticker's bars in a
    # row, as the frame holds them) and the mu of each kept day's next day. Lists of years to
    # concatenate and transpose made two more copies of each (42 MB at 2,000 tickers).
    bars = {
        name: np.empty((n_tickers, n_days)) for name in ("open", "high", "low", "close", "volume")
    }
    mu_following = np.empty((n_days, n_tickers))  # the last row: the day after as_of
    written = 0
    cursor = 0
    for year_days in calendar:
        days = year_days[year_days <= end]
        n = len(days)
        # (days, tickers, draws): every stream consumes its whole year, whatever as_of cuts off
        draws = np.stack(
            [rng.standard_normal((len(year_days), _N_DAILY_DRAWS))[:n] for rng in ticker_rngs],
            axis=1,
        )
        market = market_rng.standard_normal(len(year_days))[:n]
        shift = np.zeros(n) if regime_day is None else (days >= regime_day).astype(float)

        sigma = np.empty((n, n_tickers))
        z_all = np.empty((n, n_tickers))
        mu_all = np.empty((n, n_tickers))
        for t in range(n):
            h_m = m_omega + m_alpha * f_prev * f_prev + m_beta * h_m
            h_i = i_omega + _IDIO_ALPHA * idio_prev * idio_prev + _IDIO_BETA * h_i
            sd = np.sqrt(beta2 * h_m + h_i)
            mu = signal_strength * signal() + (drift + regime_drift_shift * shift[t])
            f_prev = np.sqrt(h_m) * market[t]
            idio_prev = np.sqrt(h_i) * draws[t, :, 0]
            z = mu + (beta * f_prev + idio_prev) / sd
            slot = cursor % 4
            sum4 += z_prev - past4[slot]  # past4 now: the four z before the new z_prev
            past4[slot] = z_prev
            cursor += 1
            z_prev = z
            sigma[t], z_all[t], mu_all[t] = sd, z, mu

        keep = days >= start
        k = (
            np.ones(n)
            if regime_day is None
            else np.where(days >= regime_day, regime_vol_multiplier, 1.0)
        )
        scaled_sigma = sigma * k[:, None]
        shock = np.exp(_SCALE_SHOCK_SD * draws[:, :, 5] - _SCALE_SHOCK_SD**2)
        r = scaled_sigma * shock * z_all * np.where(z_all < 0, 1.0 + down_boost, 1.0)
        log_close = log_price + np.cumsum(r, axis=0)
        prev_close = np.vstack([log_price[None, :], log_close[:-1]])
        log_price = log_close[-1]
        if not keep.any():
            continue
        gap = 0.3 * r + 0.2 * scaled_sigma * draws[:, :, 1]
        log_open = prev_close + gap
        log_high = np.maximum(log_open, log_close) + 0.5 * scaled_sigma * np.abs(draws[:, :, 2])
        log_low = np.minimum(log_open, log_close) - 0.5 * scaled_sigma * np.abs(draws[:, :, 3])
        volume = np.round(
            np.exp(log_volume + 0.35 * (np.abs(z_all) - 0.8) + 0.3 * draws[:, :, 4] - 0.045)
        )
        # high/low computed from the same rounded numbers keep high >= max(open, close) exact
        open_, close = np.exp(log_open[keep]), np.exp(log_close[keep])
        year = slice(written, written + len(open_))
        bars["open"][:, year] = open_.T
        bars["close"][:, year] = close.T
        bars["high"][:, year] = np.maximum(np.exp(log_high[keep]), np.maximum(open_, close)).T
        bars["low"][:, year] = np.minimum(np.exp(log_low[keep]), np.minimum(open_, close)).T
        bars["volume"][:, year] = volume[keep].T
        # row i of mu_following: the mu of kept day i + 1 (prob_up at close i is Phi of it)
        if written == 0:
            mu_following[: year.stop - 1] = mu_all[keep][1:]
        else:
            mu_following[written - 1 : year.stop - 1] = mu_all[keep]
        written = year.stop

    # P(up) for the bar after as_of: the next business day's mu, known at as_of's close
    next_day = np.busday_offset(end, 1, roll="forward")
    next_shift = 0.0 if regime_day is None or next_day < regime_day else 1.0
    mu_next = signal_strength * signal() + drift + regime_drift_shift * next_shift

    names = pd.Index([_ticker_name(i) for i in range(n_tickers)], dtype=object)  # in text order
    columns: dict[str, Any] = {name: values.ravel() for name, values in bars.items()}
    columns["date"] = np.tile(dates, n_tickers)
    columns["ticker"] = pd.Categorical.from_codes(
        np.repeat(np.arange(n_tickers), n_days), categories=names
    )
    prices = pd.DataFrame(columns, columns=list(PRICE_COLUMNS))

    # prob_up at close t is Phi(mu_{t+1})
    mu_following[-1] = mu_next
    prob = ndtr(mu_following, out=mu_following)
    index = pd.MultiIndex.from_product([pd.DatetimeIndex(dates), names], names=["date", "ticker"])
    prob_up = pd.Series(prob.ravel(), index=index, name="prob_up")
    known = prob[:-1]  # rows whose next bar is in the frame
    bayes = float(np.maximum(known, 1 - known).mean()) if len(known) else float("nan")
    up_rate = float(known.mean()) if len(known) else float("nan")

    return SyntheticMarket(
        prices=prices,
        prob_up=prob_up,
        bayes_accuracy=bayes,
        up_rate=up_rate,
        seed=seed,
        n_tickers=n_tickers,
        years=years,
        as_of=as_of_ts,
        regime_change=regime_ts,
        regime_vol_multiplier=float(regime_vol_multiplier),
        regime_drift_shift=float(regime_drift_shift),
        signal_strength=float(signal_strength),
        parameters={
            "epoch": str(EPOCH),
            "calendar": "Mon-Fri, no holidays",
            "drift_range": list(drift_range),
            "beta_range": list(beta_range),
            "annual_log_drift_range": list(_ANNUAL_LOG_DRIFT_RANGE),
        },
    )
