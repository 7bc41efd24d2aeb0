"""The data registry against a mirror served on 127.0.0.1 (no internet needed or used)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from surveillance.cli import main
from surveillance.datasets import DATASETS, DataUnavailable, Registry, sha256_of
from tests.conftest import lobster_zip


class _Quiet(http.server.SimpleHTTPRequestHandler):
    served: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        type(self).served.append(self.path)
        super().do_GET()


@pytest.fixture()
def mirror(tmp_path: Path, lobster_dir: Path):
    """A directory served over HTTP on 127.0.0.1: GOOG level 1 as it is, GOOG level 5 corrupted."""
    root = tmp_path / "mirror"
    (root / "lobster").mkdir(parents=True)
    good = lobster_zip(lobster_dir, "GOOG", 1)
    shutil.copy(good, root / "lobster" / good.name)
    bad = lobster_zip(lobster_dir, "GOOG", 5)
    (root / "lobster" / bad.name).write_bytes(bad.read_bytes()[:-100] + b"\0" * 100)
    _Quiet.served = []
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_a_dataset_is_fetched_from_the_mirror_once_then_read_from_the_cache(mirror, tmp_path):
    url, _ = mirror
    registry = Registry(tmp_path / "cache", mirror_url=url)
    path = registry.path("lobster-goog-1")
    assert path == tmp_path / "cache" / "lobster" / "LOBSTER_SampleFile_GOOG_2012-06-21_1.zip"
    assert sha256_of(path) == DATASETS["lobster-goog-1"].sha256
    assert registry.state(DATASETS["lobster-goog-1"]) == "cached"
    served = len(_Quiet.served)
    assert registry.path("lobster-goog-1") == path  # a cache hit: nothing more is served
    assert len(_Quiet.served) == served == 1


def test_a_download_that_fails_its_hash_is_deleted_and_reported(mirror, tmp_path):
    url, _ = mirror
    registry = Registry(tmp_path / "cache", mirror_url=url)
    with pytest.raises(DataUnavailable, match="does not match its sha256"):
        registry.path("lobster-goog-5")
    assert not (tmp_path / "cache" / "lobster" / DATASETS["lobster-goog-5"].filename).exists()


def test_a_mirror_directory_is_read_in_place_and_checked(mirror, tmp_path):
    _, root = mirror
    registry = Registry(tmp_path / "cache", mirror_dir=root)
    good = registry.path("lobster-goog-1")
    assert good.parent == root / "lobster" and not (tmp_path / "cache").exists()
    with pytest.raises(DataUnavailable, match="does not match the sha256"):
        registry.path("lobster-goog-5")


def test_without_network_or_mirror_one_line_names_the_file_its_address_and_the_mirror(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = Registry(tmp_path / "cache", mirror_url=f"http://127.0.0.1:{port}/")
    with pytest.raises(DataUnavailable) as info:
        registry.path("lobster-msft-10")
    message = str(info.value)
    assert "\n" not in message
    assert "LOBSTER_SampleFile_MSFT_2012-06-21_10.zip" in message
    assert f"http://127.0.0.1:{port}/lobster/" in message and "SURV_DATA_MIRROR" in message
    # a venue file with no public address needs a mirror
    with pytest.raises(DataUnavailable, match="no public address"):
        Registry(tmp_path / "cache").path("bitstamp-btcusd-2015-05-01")
    with pytest.raises(DataUnavailable, match="no dataset named"):
        Registry(tmp_path / "cache").path("lobster-goog-2")


def test_the_data_commands_list_fetch_and_locate(mirror, tmp_path, monkeypatch, capsys):
    url, _ = mirror
    monkeypatch.setenv("SURV_DATA_MIRROR", url)
    monkeypatch.setenv("SURV_DATA_DIR", str(tmp_path / "cache"))
    assert main(["data", "fetch", "lobster-goog-1"]) == 0
    assert main(["data", "path", "lobster-goog-1"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cache" / "lobster") in out
    assert main(["data", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["lobster-goog-1"].endswith("cached") and rows["lobster-goog-10"].endswith("-")
    assert main(["data", "path", "lobster-goog-5"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "sha256" in err
