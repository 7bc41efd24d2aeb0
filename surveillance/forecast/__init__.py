"""Forecasting on the engine: class and mid-price forecasts from forked futures, baselines and their evaluation."""
