"""LOBSTER message and orderbook files, read from their CSVs or straight from the vendor zip.

File names follow ``TICKER_YYYY-MM-DD_STARTMS_ENDMS_{message,orderbook}_LEVEL.csv``. Message
columns: time (seconds after midnight, decimals to the nanosecond), type, order id, size, price
(USD x 10,000), direction (1 buy, -1 sell). Orderbook row ``i`` is the book after message ``i``:
``ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ...``.

Rows that cannot be parsed (wrong field count, non-numbers, unknown type or direction, negative
size) are skipped together with their orderbook row and counted in ``malformed_rows``.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.types import BookEvent, EventKind, Instrument, Side
from simulator.units import NS_PER_S

_NAME = re.compile(
    r"(?P<symbol>[A-Za-z0-9.\-]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<what>message|orderbook)_(?P<levels>\d+)\.csv$"
)
_MESSAGE_COLUMNS = ["time", "type", "order_id", "size", "price", "direction"]


class FeedError(Exception):
    """A feed file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True, slots=True)
class FileName:
    symbol: str
    date: str
    start_ms: int
    end_ms: int
    what: str
    levels: int

    @classmethod
    def parse(cls, name: str) -> FileName:
        m = _NAME.search(Path(name).name)
        if m is None:
            raise FeedError(f"not a LOBSTER file name: {Path(name).name}")
        return cls(
            m["symbol"], m["date"], int(m["start"]), int(m["end"]), m["what"], int(m["levels"])
        )


@dataclass(slots=True)
class Messages:
    """Message columns as integer arrays (one entry per message)."""

    ts_ns: np.ndarray  # int64, nanoseconds after midnight
    kind: np.ndarray  # int8, EventKind values
    order_id: np.ndarray  # int64
    qty: np.ndarray  # int64, shares
    price: np.ndarray  # int64, price units
    side: np.ndarray  # int8, Side values

    def __len__(self) -> int:
        return len(self.ts_ns)

    def take(self, index: np.ndarray | slice) -> Messages:
        return Messages(
            self.ts_ns[index],
            self.kind[index],
            self.order_id[index],
            self.qty[index],
            self.price[index],
            self.side[index],
        )

    def events(self, instrument: str = "") -> list[BookEvent]:
        kinds = [EventKind(k) for k in range(1, 8)]
        return [
            BookEvent(t, kinds[k - 1], o, q, p, Side.BID if s > 0 else Side.ASK, instrument)
            for t, k, o, q, p, s in zip(
                self.ts_ns.tolist(),
                self.kind.tolist(),
                self.order_id.tolist(),
                self.qty.tolist(),
                self.price.tolist(),
                self.side.tolist(),
                strict=True,
            )
        ]


@dataclass(slots=True)
class LobsterDay:
    """One instrument-day of LOBSTER data."""

    name: FileName
    messages: Messages
    orderbook: np.ndarray | None  # (rows, 4 * levels) int64, aligned with messages
    malformed_rows: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # each message's line in the file (0-based): a skipped line is a gap in the sequence
    lines: np.ndarray | None = None

    @property
    def symbol(self) -> str:
        return self.name.symbol

    @property
    def levels(self) -> int:
        return self.name.levels

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.name.symbol, feed_depth=self.name.levels)

    @property
    def date(self) -> str:
        return self.name.date


def _read_member(path: Path, member: str | None) -> tuple[str, bytes]:
    if member is None:
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        with zipfile.ZipFile(path) as zf:
            return member, zf.read(member)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise FeedError(f"cannot read {member} from {path}: {exc}") from exc


def locate(
    path: str | Path, orderbook: str | Path | None = None
) -> tuple[Path, str | None, Path | None, str | None]:
    """Resolve a zip or a message CSV into (message file, zip member, orderbook file, member)."""
    path = Path(path)
    if not path.exists():
        raise FeedError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        msgs = [n for n in names if _NAME.search(n) and "_message_" in n]
        books = [n for n in names if _NAME.search(n) and "_orderbook_" in n]
        if len(msgs) != 1:
            raise FeedError(f"{path}: expected one LOBSTER message file, found {len(msgs)}")
        return path, msgs[0], (path if books else None), (books[0] if books else None)
    name = FileName.parse(path.name)
    if name.what != "message":
        raise FeedError(f"{path.name} is an orderbook file; pass the message file")
    if orderbook is None:
        guess = path.with_name(path.name.replace("_message_", "_orderbook_"))
        orderbook = guess if guess.exists() else None
    return path, None, (Path(orderbook) if orderbook else None), None


def _parse_messages(raw: bytes) -> tuple[Messages, np.ndarray]:
    """Parse message CSV bytes; returns the messages and a mask of the rows kept."""
    try:
        df = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            names=_MESSAGE_COLUMNS,
            dtype={
                "time": np.float64,
                "type": np.int64,
                "order_id": np.int64,
                "size": np.int64,
                "price": np.int64,
                "direction": np.int64,
            },
            engine="c",
        )
        strict = True
    except (ValueError, pd.errors.ParserError):
        strict = False
    if not strict or df.shape[1] != 6:
        # Tolerant path: split every line, coerce, and mark what does not fit.
        lines = raw.decode("utf-8", errors="replace").splitlines()
        rows = [line.split(",") for line in lines]
        good_shape = np.array([len(r) == 6 for r in rows], dtype=bool)
        padded = [r if len(r) == 6 else ["x"] * 6 for r in rows]
        df = pd.DataFrame(padded, columns=_MESSAGE_COLUMNS)
        for col in _MESSAGE_COLUMNS:
            df[col] = pd.to_numeric(df[col].str.strip(), errors="coerce")
        numeric = df.notna().all(axis=1).to_numpy() & good_shape
        df = df.fillna(0)
    else:
        numeric = np.ones(len(df), dtype=bool)
    kind = df["type"].to_numpy()
    side = df["direction"].to_numpy()
    size = df["size"].to_numpy()
    price = df["price"].to_numpy()
    integral = (
        (np.mod(kind, 1) == 0)
        & (np.mod(size, 1) == 0)
        & (np.mod(price, 1) == 0)
        & (np.mod(df["order_id"].to_numpy(), 1) == 0)
    )
    ok = (
        numeric
        & integral
        & np.isin(kind, (1, 2, 3, 4, 5, 6, 7))
        & np.isin(side, (1, -1))
        & (size >= 0)
        & np.isfinite(df["time"].to_numpy())
        & (df["time"].to_numpy() >= 0)
    )
    df = df[ok]
    messages = Messages(
        ts_ns=np.rint(df["time"].to_numpy(np.float64) * NS_PER_S).astype(np.int64),
        kind=df["type"].to_numpy().astype(np.int8),
        order_id=df["order_id"].to_numpy().astype(np.int64),
        qty=df["size"].to_numpy().astype(np.int64),
        price=df["price"].to_numpy().astype(np.int64),
        side=df["direction"].to_numpy().astype(np.int8),
    )
    return messages, ok


def _parse_orderbook(raw: bytes, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse orderbook CSV bytes; returns the rows and a mask of the well-formed ones."""
    width = 4 * levels
    try:
        book = pd.read_csv(io.BytesIO(raw), header=None, dtype=np.int64, engine="c").to_numpy()
        if book.shape[1] != width:
            raise FeedError(f"orderbook has {book.shape[1]} columns, expected {width}")
        return book, np.ones(len(book), dtype=bool)
    except (ValueError, pd.errors.ParserError):
        pass
    lines = raw.decode("utf-8", errors="replace").splitlines()
    out = np.zeros((len(lines), width), dtype=np.int64)
    ok = np.zeros(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        parts = line.split(",")
        if len(parts) != width:
            continue
        try:
            out[i] = [int(p) for p in parts]
            ok[i] = True
        except ValueError:
            continue
    return out, ok


def load_lobster(
    path: str | Path,
    orderbook: str | Path | None = None,
    *,
    with_orderbook: bool = True,
) -> LobsterDay:
    """Load a LOBSTER day from a vendor zip or a message CSV (orderbook found beside it)."""
    msg_path, msg_member, book_path, book_member = locate(path, orderbook)
    msg_name, msg_raw = _read_member(msg_path, msg_member)
    name = FileName.parse(msg_name)
    messages, msg_ok = _parse_messages(msg_raw)
    malformed = int((~msg_ok).sum())
    book = None
    notes: list[str] = []
    if with_orderbook:
        if book_path is None:
            raise FeedError(f"no orderbook file found for {msg_name}")
        _, book_raw = _read_member(book_path, book_member)
        book, book_ok = _parse_orderbook(book_raw, name.levels)
        if len(book) != len(msg_ok):
            raise FeedError(f"{msg_name}: {len(msg_ok)} messages but {len(book)} orderbook rows")
        both = msg_ok & book_ok
        malformed = int((~both).sum())
        if not both.all():
            messages = Messages(*(np.asarray(col) for col in _realign(messages, msg_ok, both)))
        book = book[both]
        kept = both
    else:
        kept = msg_ok
    if malformed:
        notes.append(f"skipped {malformed} malformed row(s)")
    lines = np.flatnonzero(kept).astype(np.int64)
    return LobsterDay(name, messages, book, malformed, str(path), notes, lines)


def _realign(messages: Messages, kept: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """Messages were filtered by ``kept``; filter them further to ``keep`` (a subset)."""
    sub = keep[kept]
    return tuple(
        getattr(messages, f)[sub] for f in ("ts_ns", "kind", "order_id", "qty", "price", "side")
    )
