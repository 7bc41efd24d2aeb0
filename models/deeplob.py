"""DeepLOB (Zhang, Zohren and Roberts 2019), built from the paper's description: the last 100
book snapshots (level-5 prices and sizes, 20 features) through three convolution blocks, an
inception module and an LSTM, to a down / flat / up class.

Choices of ours, each small: the network has one 3-class head per horizon (one model reads
every horizon, where the paper trains one per horizon: five times cheaper on CPU, the trunk is
the same); inputs are standardised with the training set's per-feature mean and standard
deviation, kept in the checkpoint; convolutions in time are unpadded, as in the paper, so the
LSTM reads 82 steps. The forecasting command wires it (``surveillance forecast``); the arrays
it reads come from ``surveillance.forecast.features.snapshot_windows``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class DeepLOBConfig:
    features: int = 20  # 5 levels x (ask price, ask size, bid price, bid size)
    snapshots: int = 100
    horizons: int = 5
    conv_filters: int = 16  # the paper's convolution blocks
    inception_filters: int = 32  # per inception branch
    lstm_hidden: int = 64
    classes: int = 3


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Adam with early stopping on the validation slice: the epoch with the best validation
    score is kept, and training stops after ``patience`` epochs without a better one.
    ``select``: "f1" (macro-F1 averaged over the horizons, the score the forecasts are judged
    by) or "loss". On one day of data the validation loss is best after the first epoch, when
    the network still predicts one class for every input (docs/studies/forecasting.md)."""

    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 8
    patience: int = 2
    seed: int = 0
    threads: int = 1
    select: str = "f1"


def _conv(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride), nn.LeakyReLU(0.01))


class DeepLOB(nn.Module):
    def __init__(self, config: DeepLOBConfig) -> None:
        super().__init__()
        self.config = config
        c, i = config.conv_filters, config.inception_filters
        if config.features % 4 or config.features // 4 not in (5,):
            raise ValueError("DeepLOB reads 5 levels: 20 features")
        self.register_buffer("mean", torch.zeros(config.features))
        self.register_buffer("std", torch.ones(config.features))
        # block 1 pairs each price with its size, block 2 each ask with its bid, block 3 folds
        # the 5 levels; the (4, 1) convolutions mix 4 consecutive snapshots
        self.blocks = nn.Sequential(
            _conv(1, c, (1, 2), (1, 2)),  # width 20 -> 10
            _conv(c, c, (4, 1)),
            _conv(c, c, (4, 1)),
            _conv(c, c, (1, 2), (1, 2)),  # 10 -> 5
            _conv(c, c, (4, 1)),
            _conv(c, c, (4, 1)),
            _conv(c, c, (1, 5)),  # 5 -> 1
            _conv(c, c, (4, 1)),
            _conv(c, c, (4, 1)),
        )
        self.branch3 = nn.Sequential(
            _conv(c, i, (1, 1)), nn.Conv2d(i, i, (3, 1), padding=(1, 0)), nn.LeakyReLU(0.01)
        )
        self.branch5 = nn.Sequential(
            _conv(c, i, (1, 1)), nn.Conv2d(i, i, (5, 1), padding=(2, 0)), nn.LeakyReLU(0.01)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d((3, 1), stride=(1, 1), padding=(1, 0)), _conv(c, i, (1, 1))
        )
        self.lstm = nn.LSTM(3 * i, config.lstm_hidden, batch_first=True)
        self.head = nn.Linear(config.lstm_hidden, config.horizons * config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, T, F) snapshots -> logits (B, horizons, classes)."""
        x = ((x - self.mean) / self.std).unsqueeze(1)  # (B, 1, T, F)
        x = self.blocks(x)  # (B, c, T - 18, 1)
        x = torch.cat([self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)
        x = x.squeeze(-1).transpose(1, 2)  # (B, T', 3i)
        out, _ = self.lstm(x)  # (B, T', hidden)
        logits = self.head(out[:, -1])  # (B, horizons * classes)
        return logits.view(-1, self.config.horizons, self.config.classes)


@dataclass(slots=True)
class TrainingLog:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("-inf")  # the selection score (higher is better)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_score": round(self.best_score, 5),
            "seconds": round(self.seconds, 1),
        }


def mean_macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 per horizon (columns), averaged."""
    from sklearn.metrics import f1_score

    return float(
        np.mean([f1_score(y[:, h], pred[:, h], average="macro") for h in range(y.shape[1])])
    )


def _loss(model: DeepLOB, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)  # (B, H, C)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate_loss(model: DeepLOB, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    model.eval()
    total = 0.0
    for k in range(0, len(x), batch):
        xb, yb = torch.from_numpy(x[k : k + batch]), torch.from_numpy(y[k : k + batch])
        total += float(_loss(model, xb, yb)) * len(xb)
    return total / max(len(x), 1)


def train_deeplob(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: DeepLOBConfig | None = None,
    train: TrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[DeepLOB, TrainingLog]:
    """Fit on (``x_train`` (N, T, F) float32, ``y_train`` (N, H) classes), stop when the
    validation loss has not improved for ``patience`` epochs, return the best epoch's model."""
    train = train or TrainConfig()
    if train.select not in ("f1", "loss"):
        raise ValueError(f"select must be f1 or loss, not {train.select!r}")
    config = config or DeepLOBConfig(
        features=x_train.shape[2], snapshots=x_train.shape[1], horizons=y_train.shape[1]
    )
    torch.manual_seed(train.seed)
    torch.set_num_threads(train.threads)
    rng = np.random.default_rng(train.seed)
    model = DeepLOB(config)
    flat = x_train.reshape(-1, x_train.shape[2])
    model.mean.copy_(torch.from_numpy(flat.mean(0).astype(np.float32)))
    model.std.copy_(torch.from_numpy(np.maximum(flat.std(0), 1e-6).astype(np.float32)))
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    y_train = y_train.astype(np.int64)
    y_val = y_val.astype(np.int64)
    log = TrainingLog()
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    stale = 0
    for epoch in range(train.max_epochs):
        model.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for k in range(0, len(order), train.batch_size):
            ix = order[k : k + train.batch_size]
            loss = _loss(model, torch.from_numpy(x_train[ix]), torch.from_numpy(y_train[ix]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(ix)
        val = evaluate_loss(model, x_val, y_val)
        f1 = mean_macro_f1(y_val, predict_classes(model, x_val))
        log.epochs.append(
            {
                "epoch": epoch,
                "train_loss": round(total / len(order), 5),
                "val_loss": round(val, 5),
                "val_macro_f1": round(f1, 5),
            }
        )
        if progress is not None:
            progress(
                f"deeplob epoch {epoch}: train {total / len(order):.4f} val {val:.4f} "
                f"val macro-F1 {f1:.3f}"
            )
        score = f1 if train.select == "f1" else -val
        if score > log.best_score + 1e-6:
            log.best_score, log.best_epoch, stale = score, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= train.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    log.seconds = time.perf_counter() - t0
    return model, log


@torch.no_grad()
def predict_classes(model: DeepLOB, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The most likely class per horizon, (N, H)."""
    model.eval()
    out = [model(torch.from_numpy(x[k : k + batch])).argmax(-1) for k in range(0, len(x), batch)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros((0, model.config.horizons))


def save_deeplob(path: Path, model: DeepLOB, meta: dict[str, object]) -> Path:
    """Weights and architecture in ``path`` (.pt), what it was trained on in a json beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "state": model.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return path


def load_deeplob(path: Path) -> DeepLOB:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = DeepLOB(DeepLOBConfig(**blob["config"]))
    model.load_state_dict(blob["state"])
    model.eval()
    return model
