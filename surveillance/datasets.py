"""The data registry: every dataset the project knows by name, fetched once, hash-checked, read
locally.

A dataset is a name (``lobster-goog-10``), a venue folder and file name, the public address
where there is one, and the sha256 of the bytes we hold. ``Registry.path(name)`` finds it, in
this order:

1. a local mirror directory: ``SURV_DATA_MIRROR`` when it is a directory, else the shared
   ``data/`` folder beside the checkout when present; the file is read in place (checked);
2. the cache (``SURV_DATA_DIR``, else the user's cache directory), where an earlier fetch left
   it (checked);
3. a download with pooch from the mirror URL (``SURV_DATA_MIRROR`` when it is an address) or
   the dataset's own address, into the cache; a file whose hash does not match is deleted and
   reported.

A dataset that cannot be had is one ``DataUnavailable`` line that names the file, the address
tried and ``SURV_DATA_MIRROR``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LOBSTER_URL = (
    "https://lobsterdata.com/info/sample/LOBSTER_SampleFile_{ticker}_2012-06-21_{levels}.zip"
)
APP_NAME = "mars-surveillance"


class DataUnavailable(RuntimeError):
    """A dataset that is neither mirrored, cached nor downloadable (or failed its hash)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    venue: str
    instrument: str
    date: str
    levels: int | None  # book levels the feed shows; None: full depth
    folder: str  # the venue's folder in a mirror and in the cache
    filename: str
    url: str | None  # the public address; None: from a mirror only
    sha256: str | None  # None: bytes we have never held, not checked


# sha256 of the files we hold (../shared/data/*/MANIFEST.md)
_LOBSTER_SHA256 = {
    ("GOOG", 10): "2fa66b61c7c4d4cd3f19180aaa7f5937a26355f81b2ac8e4a84e36550e8dde4a",
    ("GOOG", 5): "a1146b74a3951cc34a8571c75940b7fd498445e48949123cae88a29a4e8b5441",
    ("GOOG", 1): "34ec126261ac19831972f47edd8ab874d52d93b54a9ab623ee4ce89d3f90f5cc",
    ("AMZN", 5): "23290152d0a588359ac59a969d385748112de5733065c81f5ba3ae9d770f74db",
    ("AMZN", 1): "60f646b628ef73edd37aacde208c992c2454a0012c437a191a0d9cf20b84fd10",
}


def _lobster(ticker: str, levels: int) -> Dataset:
    return Dataset(
        name=f"lobster-{ticker.lower()}-{levels}",
        venue="NASDAQ (LOBSTER sample)",
        instrument=ticker,
        date="2012-06-21",
        levels=levels,
        folder="lobster",
        filename=f"LOBSTER_SampleFile_{ticker}_2012-06-21_{levels}.zip",
        url=LOBSTER_URL.format(ticker=ticker, levels=levels),
        sha256=_LOBSTER_SHA256.get((ticker, levels)),
    )


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        *(_lobster(t, n) for t in ("AAPL", "AMZN", "GOOG", "INTC", "MSFT") for n in (1, 5, 10)),
        Dataset(
            "bitstamp-btcusd-2015-05-01",
            "Bitstamp (live orders)",
            "BTC/USD",
            "2015-05-01",
            None,
            "bitstamp",
            "2015-05-01.log.bz2",
            None,
            "d6468d7f0e804b1e0a4ffd46dd3022a6e1e0177f633588c9715694f0cbb62e6d",
        ),
        Dataset(
            "databento-esh4-2023-12-25",
            "CME Globex (Databento MBO)",
            "ESH4",
            "2023-12-25",
            None,
            "databento",
            "esh4-glbx-mdp3-20231225.mbo.dbn.zst",
            None,
            "04597c542c1f0a9d0f6c5e8b73c7624db67d978061b42742b86e09ae608c0bc5",
        ),
    ]
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Registry:
    """Where datasets are looked for (module docstring); ``from_env`` reads the variables."""

    cache: Path
    mirror_dir: Path | None = None
    mirror_url: str | None = None

    @classmethod
    def from_env(cls) -> Registry:
        cache = os.environ.get("SURV_DATA_DIR")
        mirror = os.environ.get("SURV_DATA_MIRROR", "").strip()
        url = mirror if mirror.startswith(("http://", "https://", "ftp://")) else None
        directory = Path(mirror) if mirror and url is None else None
        if directory is None and url is None and SHARED_DATA.is_dir():
            directory = SHARED_DATA
        return cls(
            Path(cache) if cache else _user_cache(),
            directory,
            url.rstrip("/") + "/" if url else None,
        )

    def dataset(self, name: str) -> Dataset:
        try:
            return DATASETS[name]
        except KeyError:
            raise DataUnavailable(
                f"no dataset named {name!r}; `surveillance data list` names them all"
            ) from None

    def local(self, dataset: Dataset) -> Path | None:
        """The dataset where it already is (the mirror directory or the cache), checked; None
        when it is in neither."""
        for root in (self.mirror_dir, self.cache):
            if root is None:
                continue
            path = root / dataset.folder / dataset.filename
            if path.is_file():
                _check(dataset, path)
                return path
        return None

    def address(self, dataset: Dataset) -> str | None:
        if self.mirror_url is not None:
            return f"{self.mirror_url}{dataset.folder}/{dataset.filename}"
        return dataset.url

    def path(self, name: str, *, progress: bool = False) -> Path:
        """The local path of dataset ``name``, fetching it first if needed."""
        dataset = self.dataset(name)
        found = self.local(dataset)
        if found is not None:
            return found
        url = self.address(dataset)
        if url is None:
            raise DataUnavailable(
                f"{dataset.filename} has no public address and no mirror holds it: set "
                "SURV_DATA_MIRROR to a mirror URL or directory"
            )
        return self._download(dataset, url, progress)

    def _download(self, dataset: Dataset, url: str, progress: bool) -> Path:
        import pooch
        import requests

        # pooch says where it downloads to; the progress bar says it when asked
        pooch.get_logger().setLevel("WARNING")
        target = self.cache / dataset.folder
        try:
            fetched = pooch.retrieve(
                url,
                known_hash=f"sha256:{dataset.sha256}" if dataset.sha256 else None,
                fname=dataset.filename,
                path=target,
                progressbar=progress,
            )
        except requests.RequestException as exc:
            raise DataUnavailable(
                f"cannot fetch {dataset.filename} from {url} ({_reason(exc)}): set "
                "SURV_DATA_MIRROR to a mirror URL or directory"
            ) from None
        except ValueError as exc:  # pooch: the downloaded bytes fail the hash (not kept)
            raise DataUnavailable(
                f"{dataset.filename} from {url} does not match its sha256 and was deleted ({exc})"
            ) from None
        return Path(fetched)

    def state(self, dataset: Dataset) -> str:
        """Where the dataset is now: ``mirror``, ``cached`` or ``-`` (not fetched)."""
        if (
            self.mirror_dir is not None
            and (self.mirror_dir / dataset.folder / dataset.filename).is_file()
        ):
            return "mirror"
        if (self.cache / dataset.folder / dataset.filename).is_file():
            return "cached"
        return "-"

    def size(self, dataset: Dataset) -> int | None:
        for root in (self.mirror_dir, self.cache):
            if root is not None and (root / dataset.folder / dataset.filename).is_file():
                return (root / dataset.folder / dataset.filename).stat().st_size
        return None


def _check(dataset: Dataset, path: Path) -> None:
    if dataset.sha256 is not None and sha256_of(path) != dataset.sha256:
        raise DataUnavailable(
            f"{path} does not match the sha256 of {dataset.name} ({dataset.sha256[:12]}...): "
            "delete it or point SURV_DATA_MIRROR at a good copy"
        )


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _user_cache() -> Path:
    import pooch

    return Path(pooch.os_cache(APP_NAME))


def data_path(name: str) -> Path:
    """``Registry.from_env().path(name)``: what commands with a default data file call."""
    return Registry.from_env().path(name)
