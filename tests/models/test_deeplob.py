"""DeepLOB: shapes, a training step that lowers the loss, early stopping, save and load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.deeplob import (
    DeepLOB,
    DeepLOBConfig,
    TrainConfig,
    _loss,
    load_deeplob,
    predict_classes,
    save_deeplob,
    train_deeplob,
)

# A narrow network on short inputs keeps these tests to a second on a busy CPU.
SMALL = DeepLOBConfig(horizons=2, conv_filters=4, inception_filters=4, lstm_hidden=8)


@pytest.fixture(autouse=True)
def one_thread():
    # torch's default thread pool spins against other processes on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_forward_shape():
    model = DeepLOB(DeepLOBConfig(horizons=5))
    logits = model(torch.zeros(2, 100, 20))
    assert logits.shape == (2, 5, 3)


def test_training_steps_lower_the_loss_on_a_batch():
    torch.manual_seed(0)
    model = DeepLOB(SMALL)
    x = torch.randn(16, 30, 20)
    y = torch.randint(0, 3, (16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = float(_loss(model, x, y).detach())
    for _ in range(5):
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(_loss(model, x, y).detach()) < before


def test_train_is_seeded_stops_early_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 30, 20)).astype(np.float32)
    y = rng.integers(0, 3, (48, 2))
    cfg = TrainConfig(max_epochs=2, patience=1, batch_size=16)
    a, log = train_deeplob(x[:32], y[:32], x[32:], y[32:], SMALL, cfg)
    b, _ = train_deeplob(x[:32], y[:32], x[32:], y[32:], SMALL, cfg)
    assert 1 <= len(log.epochs) <= 2 and 0 <= log.best_epoch < len(log.epochs)
    pa = predict_classes(a, x)
    assert pa.shape == (48, 2) and (pa == predict_classes(b, x)).all()
    path = save_deeplob(tmp_path / "d.pt", a, {"note": "test"})
    assert (predict_classes(load_deeplob(path), x) == pa).all()
    assert path.with_suffix(".json").exists()
