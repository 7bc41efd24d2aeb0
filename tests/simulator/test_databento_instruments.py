"""DBN files of several instruments, instrument definition records, and the snapshot's time:
each instrument converted on its own, with the metadata its definition gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

dbn = pytest.importorskip("databento_dbn")

from simulator.databento import (  # noqa: E402
    F_BAD_TS_RECV,
    F_LAST,
    F_SNAPSHOT,
    DatabentoError,
    load_databento,
    load_databento_all,
)
from simulator.feeds import load_feed, load_feeds, merge_feeds  # noqa: E402
from simulator.lobster import FeedError  # noqa: E402
from surveillance.cli import main  # noqa: E402

T0 = 1_703_541_600_000_000_000  # 2023-12-25 22:00 UTC
POINT = 1_000_000_000
ES_ID, NQ_ID, ZZ_ID = 17077, 5602, 999
SNAP = F_SNAPSHOT | F_BAD_TS_RECV
ACTIONS = {"A": dbn.Action.ADD, "C": dbn.Action.CANCEL}
SIDES = {"B": dbn.Side.BID, "A": dbn.Side.ASK}


def rec(iid: int, ts: int, action: str, side: str, price: float, size: int, oid: int, flags=F_LAST):
    msg = dbn.MBOMsg(
        1, iid, ts, oid, round(price * POINT), size, ACTIONS[action], SIDES[side], ts, flags=flags
    )
    return bytes(msg)


def definition(iid: int, symbol: str, asset: str, tick: float) -> bytes:
    msg = dbn.InstrumentDefMsg(
        1, iid, T0, T0, round(tick * POINT), POINT, symbol, asset, "FUT",
        dbn.InstrumentClass.FUTURE, dbn.SecurityUpdateAction.ADD, exchange="XCME",
    )  # fmt: skip
    return bytes(msg)


def write(tmp_path: Path, records: list[bytes], symbols: list[str]) -> Path:
    meta = dbn.Metadata(
        "GLBX.MDP3", T0, dbn.SType.RAW_SYMBOL, dbn.SType.INSTRUMENT_ID, dbn.Schema.MBO,
        symbols=symbols,
    )  # fmt: skip
    path = tmp_path / "glbx.dbn"
    path.write_bytes(meta.encode() + b"".join(records))
    return path


def two_instruments(tmp_path: Path) -> Path:
    """ES and NQ interleaved, with a definition for NQ only, and a third product the venue
    table does not know (ZZ), defined with a tick of 0.1."""
    earlier = T0 - 22 * 3600 * POINT  # the snapshot's ts_recv: the request's start
    return write(
        tmp_path,
        [
            definition(NQ_ID, "NQH4", "NQ", 0.25),
            definition(ZZ_ID, "ZZH4", "ZZ", 0.1),
            rec(ES_ID, earlier, "A", "B", 4800.0, 2, 11, SNAP),
            rec(ES_ID, earlier, "A", "A", 4800.25, 3, 12, SNAP | F_LAST),
            rec(NQ_ID, T0 + 1, "A", "B", 16800.0, 1, 21),
            rec(ES_ID, T0 + 2, "A", "B", 4799.75, 4, 13),
            rec(NQ_ID, T0 + 3, "A", "A", 16800.5, 2, 22),
            rec(ES_ID, T0 + 4, "C", "B", 4799.75, 4, 13),
            rec(ZZ_ID, T0 + 5, "A", "B", 70.1, 1, 31),
        ],
        ["ESH4", "NQH4", "ZZH4"],
    )


def test_every_instrument_of_a_file_is_converted_on_its_own(tmp_path: Path) -> None:
    feeds = load_databento_all(two_instruments(tmp_path))
    assert [(f.instrument_id, f.instrument.symbol) for f in feeds] == [
        (ES_ID, str(ES_ID)),  # no definition, and the metadata lists three symbols
        (NQ_ID, "NQH4"),
        (ZZ_ID, "ZZH4"),
    ]
    es, nq, zz = feeds
    assert es.frame["order_id"].tolist() == [11, 12, 13, 13]
    assert nq.frame["order_id"].tolist() == [21, 22]
    assert set(nq.frame["instrument"]) == {"NQH4"} and nq.frame["seq"].tolist() == [0, 1]
    assert (es.check.other_records, nq.check.other_records) == (3, 5)  # the others' MBO
    # the definition's tick, and the schedule of its product (or CME Globex's for one the
    # venue table does not know)
    assert (nq.definition, nq.instrument.tick_size, nq.instrument.session_open) == (
        True,
        2_500,
        "17:00",
    )
    assert (zz.instrument.tick_size, zz.instrument.timezone) == (1_000, "America/Chicago")
    # no definition and no known symbol: the step its prices share (0.25 here)
    assert not es.definition and es.instrument.tick_size == 2_500


def test_one_instrument_is_chosen_by_symbol_or_id_and_never_silently(tmp_path: Path) -> None:
    path = two_instruments(tmp_path)
    with pytest.raises(DatabentoError, match="3 instruments"):
        load_databento(path)
    assert load_databento(path, instrument_id="NQH4").instrument_id == NQ_ID
    assert load_databento(path, instrument_id=ES_ID).instrument.symbol == str(ES_ID)
    with pytest.raises(DatabentoError, match="no instrument CLH4"):
        load_databento(path, instrument_id="CLH4")
    with pytest.raises(FeedError, match="choose one"):
        load_feed(path, "databento")
    assert [f.instrument.symbol for f in load_feeds(path, "databento", instrument="ZZH4")] == [
        "ZZH4"
    ]
    frame, snapshots = merge_feeds(load_feeds(path, "databento"))
    assert frame["ts_ns"].is_monotonic_increasing and not snapshots
    es = str(ES_ID)  # its snapshot is stamped with its first live record, after NQ's first
    assert frame["instrument"].tolist() == ["NQH4", es, es, es, "NQH4", es, "ZZH4"]


def test_the_snapshot_is_stamped_when_the_live_records_start(tmp_path: Path) -> None:
    es = load_databento(two_instruments(tmp_path), instrument_id=ES_ID)
    # the snapshot's ts_recv is the request's start (F_BAD_TS_RECV): it is the book at T0 + 2
    assert es.frame["ts_ns"].tolist() == [T0 + 2, T0 + 2, T0 + 2, T0 + 4]
    assert es.frame["synthetic"].tolist() == [True, True, False, False]


def test_convert_writes_one_file_per_instrument(tmp_path: Path, capsys) -> None:
    path = two_instruments(tmp_path)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(path), str(out)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(d["instrument"], Path(d["out"]).name) for d in lines] == [
        (str(ES_ID), f"out.{ES_ID}.jsonl"),
        ("NQH4", "out.NQH4.jsonl"),
        ("ZZH4", "out.ZZH4.jsonl"),
    ]
    nq = load_feed(tmp_path / "out.NQH4.jsonl", "normalized")
    assert nq.instrument is not None and nq.instrument.tick_size == 2_500
    assert len(nq.frame) == 2
    assert main(["convert", str(path), str(out), "--instrument", "NQH4"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    assert main(["convert", str(path), str(out), "--instrument", "CLH4"]) == 2
    assert "no instrument 'CLH4'" in capsys.readouterr().err


def test_book_check_and_replay_take_each_instrument_or_the_one_asked(
    tmp_path: Path, capsys
) -> None:
    path = two_instruments(tmp_path)
    assert main(["book-check", str(path), "--json"]) == 0
    reports = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["instrument"], r["instrument_id"], r["definition"]) for r in reports] == [
        (str(ES_ID), ES_ID, False),
        ("NQH4", NQ_ID, True),
        ("ZZH4", ZZ_ID, True),
    ]
    assert [r["events"] for r in reports] == [4, 2, 1]
    out = tmp_path / "scores.jsonl"
    replay = ["replay", str(path), "--format", "databento", "--generator", "empirical"]
    replay += ["--rollouts", "4", "--calibration", "none", "--out", str(out)]
    # three instruments, two ticks: one scorer cannot serve them, and the error says so
    assert main(replay) == 2
    assert "--instrument" in capsys.readouterr().err
    assert main([*replay, "--instrument", "NQH4"]) == 0
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert records and {r["instrument"] for r in records} == {"NQH4"}
