"""Forecasting on the engine: class and mid-price forecasts from forked futures, baselines and
their evaluation (``evaluate``), the paper's target (``targets``), scores (``metrics``) and the
HTML report (``report``)."""

from surveillance.forecast.evaluate import (
    ForecastConfig,
    ForecastDay,
    ForecastReport,
    InstrumentForecast,
    evaluate_forecast,
    forecast_instrument,
)
from surveillance.forecast.targets import ForecastError, MidPath, Thresholds

__all__ = [
    "ForecastConfig",
    "ForecastDay",
    "ForecastError",
    "ForecastReport",
    "InstrumentForecast",
    "MidPath",
    "Thresholds",
    "evaluate_forecast",
    "forecast_instrument",
]
