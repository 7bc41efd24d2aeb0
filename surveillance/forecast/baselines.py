"""The direct forecasters the engine is measured against, fitted on the training hours only:
the most frequent class, no change (always flat), and a logistic regression on book imbalance
and recent returns. (DeepLOB, the fourth, is a torch model: ``models.deeplob``, wired by the
command.)"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from surveillance.forecast.targets import FLAT


@dataclass(slots=True)
class MostFrequent:
    """Per horizon, the class the training grid holds most often (ties: the lowest class)."""

    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def fit(self, y: np.ndarray) -> MostFrequent:
        """``y``: training classes, starts x horizons."""
        self.classes = np.array([np.bincount(col, minlength=3).argmax() for col in y.T])
        return self

    def predict(self, n: int) -> np.ndarray:
        return np.tile(self.classes, (n, 1))


def no_change(n: int, horizons: int) -> np.ndarray:
    """The persistence forecast: the mid stays where it is, so always flat."""
    return np.full((n, horizons), FLAT, dtype=np.int64)


@dataclass(slots=True)
class LogisticBaseline:
    """One multinomial logistic regression per horizon on ``features.LOGISTIC_FEATURES``
    (standardised on the training grid; C = 1, scikit-learn's default, never tuned)."""

    seed: int = 0
    models: list[Pipeline] = field(default_factory=list)

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        self.models = []
        for h in range(y.shape[1]):
            model = make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=2000, random_state=self.seed)
            )
            self.models.append(model.fit(x, y[:, h]))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(x) for m in self.models], axis=1).astype(np.int64)
