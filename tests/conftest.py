"""Shared fixtures. Real data is read from ../shared/data/lobster beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

LOBSTER_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lobster"


@pytest.fixture(scope="session")
def lobster_dir() -> Path:
    if not LOBSTER_DIR.is_dir():
        pytest.skip(f"shared LOBSTER data not found at {LOBSTER_DIR}")
    return LOBSTER_DIR


def lobster_zip(lobster_dir: Path, symbol: str, levels: int) -> Path:
    return lobster_dir / f"LOBSTER_SampleFile_{symbol}_2012-06-21_{levels}.zip"
