"""Group `data`: the bars (raw_prices) and the feature matrix (features), with their checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from mlplatform import config
from mlplatform.data import (
    PRICES_SCHEMA,
    DataValidationError,
    business_day_gaps,
    extreme_returns,
    fingerprint,
    staleness_business_days,
)
from mlplatform.features import (
    FEATURE_COLUMNS,
    LABEL_DEFINITION,
    compute_features,
    dropped_tickers,
    feature_description,
    feature_schema_hash,
)
from mlplatform.orchestration.metadata import ownership, table_metadata
from mlplatform.orchestration.resources import MarketDataSource

PricesFrame = pandera_schema_to_dagster_type(PRICES_SCHEMA)


@dg.multi_asset(
    outs={
        "raw_prices": dg.AssetOut(
            group_name="data",
            **ownership("daily"),
            dagster_type=PricesFrame,
            kinds={"pandas"},
            description="Daily OHLCV bars in long format, validated; synthetic market or the "
            "user's files.",
        ),
        "market_truth": dg.AssetOut(
            group_name="data",
            **ownership("daily"),
            kinds={"pandas"},
            description="The true P(up) of every bar of a synthetic market, which only it "
            "knows: the Bayes-optimal rule the backtest scores beside the models. Empty (None) "
            "for real data.",
        ),
    },
    description="Load the bars (and, for a synthetic market, its truth) in one step.",
)
def raw_prices(context: dg.AssetExecutionContext, market_data: MarketDataSource) -> Iterator:
    try:
        snapshot = market_data.load()
    except DataValidationError as exc:
        # Bad input is the user's to fix; retrying cannot help, and nothing downstream runs.
        raise dg.Failure(description=f"invalid market data: {exc}", allow_retries=False) from exc
    prices = snapshot.prices
    tickers = sorted(prices["ticker"].unique())
    context.log.info(f"{len(prices)} bars for {len(tickers)} tickers from {snapshot.source}")
    yield dg.Output(
        prices,
        output_name="raw_prices",
        metadata={
            "source": snapshot.source,
            "tickers": len(tickers),
            "ticker_list": ", ".join(tickers[:50]) + (" …" if len(tickers) > 50 else ""),
            "dagster/row_count": len(prices),
            "first_date": prices["date"].min().date().isoformat(),
            "last_date": prices["date"].max().date().isoformat(),
            "fingerprint": fingerprint(prices),
            "preview": table_metadata(prices.head(5)),
        },
    )
    truth = snapshot.prob_up
    yield dg.Output(
        truth,
        output_name="market_truth",
        metadata={
            "known": truth is not None,
            "rows": 0 if truth is None else len(truth),
            "bayes_optimal_accuracy": dg.MetadataValue.text(
                "unknown: real data"
                if snapshot.bayes_accuracy is None
                else f"{snapshot.bayes_accuracy:.4f} over every bar"
            ),
        },
    )


def _warning(name: str, passed: bool, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
    )


def _fresh(prices: pd.DataFrame) -> dg.AssetCheckResult:
    lag = staleness_business_days(prices, pd.Timestamp.today().normalize())
    return _warning(
        "raw_prices_fresh",
        lag <= config.STALE_AFTER_BUSINESS_DAYS,
        {"business_days_since_last_bar": lag, "allowed": config.STALE_AFTER_BUSINESS_DAYS},
    )


def _no_gaps(prices: pd.DataFrame) -> dg.AssetCheckResult:
    gaps = business_day_gaps(prices, config.MAX_GAP_BUSINESS_DAYS)
    return _warning(
        "raw_prices_no_gaps",
        gaps.empty,
        {"gaps": len(gaps), "largest_gaps": table_metadata(gaps.head(20))},
    )


def _no_extreme_returns(prices: pd.DataFrame) -> dg.AssetCheckResult:
    extremes = extreme_returns(prices, config.EXTREME_RETURN_ABS)
    return _warning(
        "raw_prices_no_extreme_returns",
        extremes.empty,
        {
            "extreme_returns": len(extremes),
            "threshold_abs_return": config.EXTREME_RETURN_ABS,
            "examples": table_metadata(extremes.head(20)),
        },
    )


# check name -> (description, measurement)
RAW_PRICES_CHECKS = {
    "raw_prices_fresh": ("The last bar is recent (business days).", _fresh),
    "raw_prices_no_gaps": ("No ticker misses a run of business days.", _no_gaps),
    "raw_prices_no_extreme_returns": (
        "No implausible one-day moves (split? bad tick?).",
        _no_extreme_returns,
    ),
}


# One step for the three data checks: each is cheap, while loading the bars and a step's events
# are not, and the three read the same bars.
@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset="raw_prices", description=description)
        for name, (description, _) in RAW_PRICES_CHECKS.items()
    ],
    can_subset=True,
    description="Data-quality warnings on the bars.",
)
def raw_prices_quality(
    context: dg.AssetCheckExecutionContext, raw_prices: pd.DataFrame
) -> Iterator[dg.AssetCheckResult]:
    selected = {key.name for key in context.selected_asset_check_keys}
    for name, (_, check) in RAW_PRICES_CHECKS.items():
        if name in selected:
            yield check(raw_prices)


# What each column means, shown on the asset's page even before its first materialization. The
# label is not a column: the labels asset derives it from the bars; its definition is shown.
FEATURES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("date", "datetime", description="Row index: the close t of the bar."),
        dg.TableColumn("ticker", "string", description="Row index: the instrument."),
        *(
            dg.TableColumn(n, "float32", description=feature_description(n))
            for n in FEATURE_COLUMNS
        ),
    ]
)


@dg.asset(
    group_name="data",
    **ownership("daily"),
    code_version=feature_schema_hash(),
    metadata={"dagster/column_schema": FEATURES_SCHEMA, "label": LABEL_DEFINITION},
    kinds={"pandas"},
    description="Leakage-free features per (date, ticker), from bars at or before each close.",
)
def features(context: dg.AssetExecutionContext, raw_prices: pd.DataFrame) -> dg.Output:
    matrix = compute_features(raw_prices)
    dropped = dropped_tickers(raw_prices, matrix)
    if dropped:  # training on fewer tickers than the user gave, silently, is wrong data
        raise dg.Failure(
            description="features: no usable row for "
            + "; ".join(f"ticker {ticker} ({why})" for ticker, why in dropped.items()),
            allow_retries=False,
        )
    dates = matrix.index.unique(level="date")
    context.log.info(f"{matrix.shape[0]} rows x {matrix.shape[1]} features")
    return dg.Output(
        matrix,
        metadata={
            "dagster/row_count": len(matrix),
            "dagster/column_schema": FEATURES_SCHEMA,
            "features": len(FEATURE_COLUMNS),
            "feature_schema_hash": feature_schema_hash(),
            "first_date": dates.min().date().isoformat(),
            "last_date": dates.max().date().isoformat(),
            "tickers": len(matrix.index.unique(level="ticker")),
        },
    )


@dg.asset_check(asset=features, blocking=True, description="No NaN or infinity in the matrix.")
def features_finite(features: pd.DataFrame) -> dg.AssetCheckResult:
    # Column by column on the float32 values: no float64 copy of a multi-GB matrix.
    per_column = pd.Series(
        {name: int((~np.isfinite(features[name].to_numpy())).sum()) for name in features.columns}
    )
    offenders = per_column[per_column > 0]
    return dg.AssetCheckResult(
        passed=not per_column.any(),
        metadata={
            "non_finite_values": int(per_column.sum()),
            "columns": table_metadata(offenders.rename("count").to_frame()),
        },
    )
