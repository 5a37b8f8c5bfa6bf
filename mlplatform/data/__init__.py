"""Pure data layer: load, validate, fingerprint and synthesise daily OHLCV bars (no Dagster)."""

from mlplatform.data.errors import DataValidationError
from mlplatform.data.files import SUPPORTED_SUFFIXES, load_prices
from mlplatform.data.fingerprint import fingerprint
from mlplatform.data.quality import (
    business_day_gaps,
    extreme_returns,
    staleness_business_days,
)
from mlplatform.data.schema import PRICE_COLUMNS, PRICES_SCHEMA, validate_prices
from mlplatform.data.synthetic import SyntheticMarket, generate_market

__all__ = [
    "PRICES_SCHEMA",
    "PRICE_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "DataValidationError",
    "SyntheticMarket",
    "business_day_gaps",
    "extreme_returns",
    "fingerprint",
    "generate_market",
    "load_prices",
    "staleness_business_days",
    "validate_prices",
]
