"""The two laws the impact study fits: the size law I = Y sigma (Q/V)^delta over a sweep of
sizes, and a power-law decay of the impact after the metaorder ends.

Both are least-squares fits in the impact's own units (not in logs: a small size's mean impact
can be at or below zero in a finite sample, which a log fit would have to drop), and both get
bootstrap intervals from resampled rollouts (``surveillance.impact.measure`` does the
resampling; these functions fit one sample). numpy and scipy only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


class FitError(ValueError):
    """Too few or degenerate points for a fit."""


@dataclass(frozen=True, slots=True)
class PowerLaw:
    """``y = scale * x ** exponent``."""

    scale: float
    exponent: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(x, float) ** self.exponent


def _power(x: np.ndarray, scale: float, exponent: float) -> np.ndarray:
    return scale * x**exponent


def fit_power_law(x: np.ndarray, y: np.ndarray, y_err: np.ndarray | None = None) -> PowerLaw:
    """The least-squares ``y = Y x^delta`` (weighted by ``1 / y_err`` when given), started
    from the log-log line through the positive points.

    >>> x = np.array([0.005, 0.01, 0.02, 0.04, 0.08])
    >>> law = fit_power_law(x, 0.7 * x**0.5)
    >>> round(law.scale, 3), round(law.exponent, 3)
    (0.7, 0.5)
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) < 2 or len(np.unique(x)) < 2 or (x <= 0).any():
        raise FitError("a power law needs two or more distinct positive sizes")
    pos = y > 0
    if pos.sum() >= 2 and len(np.unique(x[pos])) >= 2:
        slope, icept = np.polyfit(np.log(x[pos]), np.log(y[pos]), 1)
        p0 = (float(np.exp(icept)), float(slope))
    else:
        p0 = (float(max(y.max(), 1e-9)), 0.5)
    sigma = None
    if y_err is not None:
        e = np.asarray(y_err, float)
        sigma = np.where(e > 0, e, max(float(e[e > 0].min()) if (e > 0).any() else 1.0, 1e-12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            (scale, exponent), _ = curve_fit(_power, x, y, p0=p0, sigma=sigma, maxfev=5000)
        except RuntimeError as exc:
            raise FitError(f"the power law did not converge: {exc}") from None
    return PowerLaw(float(scale), float(exponent))


@dataclass(frozen=True, slots=True)
class Decay:
    """``I(s) = amplitude * (1 + s / tau_s) ** -exponent``, ``s`` seconds after the end."""

    amplitude: float
    tau_s: float
    exponent: float

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return self.amplitude * (1.0 + np.asarray(s, float) / self.tau_s) ** -self.exponent


def _decay(s: np.ndarray, amplitude: float, tau: float, exponent: float) -> np.ndarray:
    return amplitude * (1.0 + s / tau) ** -exponent


def fit_decay(s: np.ndarray, y: np.ndarray) -> Decay:
    """The power-law decay through an impact path after completion (``s`` seconds since the
    end, ``s[0] = 0``). ``tau`` is bounded to [1 s, 1 h] and the exponent to [0, 5]: a flat
    path gives an exponent near 0, a path that keeps rising is an ``exponent`` at 0.

    >>> s = np.arange(0, 900, 5.0)
    >>> d = fit_decay(s, 2.0 * (1 + s / 60) ** -0.4)
    >>> round(d.exponent, 2), round(d.tau_s)
    (0.4, 60)
    """
    s = np.asarray(s, float)
    y = np.asarray(y, float)
    ok = np.isfinite(y)
    s, y = s[ok], y[ok]
    if len(s) < 4:
        raise FitError("a decay fit needs four or more points after the end")
    a0 = float(y[0]) if y[0] != 0 else float(np.mean(y[:3]) or 1e-9)
    bounds = ([-np.inf, 1.0, 0.0], [np.inf, 3600.0, 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            (amp, tau, expo), _ = curve_fit(
                _decay, s, y, p0=(a0, 60.0, 0.5), bounds=bounds, maxfev=5000
            )
        except (RuntimeError, ValueError) as exc:
            raise FitError(f"the decay did not converge: {exc}") from None
    return Decay(float(amp), float(tau), float(expo))


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` interval of bootstrap draws (NaN draws, failed fits, left out);
    None with fewer than ten good draws."""
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    if len(d) < 10:
        return None
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
