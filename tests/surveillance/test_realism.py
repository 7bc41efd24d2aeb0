"""``surveillance realism`` on real data with the empirical generator, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.book import EMPTY_BID_PRICE
from simulator.lobster import load_lobster
from simulator.orderstream import from_lobster
from simulator.units import UnitError, parse_clock, parse_duration
from surveillance.cli import main
from surveillance.cli.commands.realism import build_generator
from surveillance.cli.commands.realism import command as realism_command
from surveillance.cli.options import PerFieldParam
from surveillance.detection.metrics import FACTS, StylizedFacts, Trajectory, compare, window_facts
from surveillance.studies.realism import (
    BUDGET_CLASSES,
    ExchangeableCeiling,
    SpreadBudget,
    bar_of,
    best_real_analog,
    exchangeable_overlaps,
    previous_span_overlaps,
    real_trajectory,
    spread_budget,
)
from tests.conftest import checkpoint_version, lobster_zip


def run_json(capsys, *args: str) -> dict:
    code = main(["realism", *args, "--generator", "empirical", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_realism_on_a_short_held_out_goog_window(lobster_dir: Path, capsys):
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    args = ["--data", data, "--start", "14:30", "--windows", "2", "--window", "3m"]
    report = run_json(capsys, *args, "--rollouts", "3", "--seed", "7")
    assert report["generator"] == "empirical-v1" and report["held_out"] is True
    assert [w["start"] for w in report["windows"]] == ["14:30:00", "14:33:00"]
    assert all(w["real_orders"] > 100 and w["sim_orders_mean"] > 100 for w in report["windows"])
    assert set(report["facts"]) == set(FACTS)
    for fact, row in report["facts"].items():
        assert row["overlap"] is None or 0.0 <= row["overlap"] <= 1.0 + 1e-9, fact
    assert report["facts"]["spread"]["paper"] == 0.970
    # the best real span of the training hours: 6 minutes ending by 14:30, every 5 minutes
    analog = report["analog"]
    assert analog["spans"] == 58 and analog["end"] <= "14:30:00"  # 09:35 (data from 09:30:00.x)
    assert analog["facts_at_bar"] <= analog["held_facts"]
    assert report["facts"]["spread"]["analog"] == analog["overlaps"]["spread"]
    # the bar: spread 0.90, the listed facts 0.80; the time-weighted spread is not held
    bars = {f: row["bar"] for f, row in report["facts"].items()}
    assert bars["spread"] == 0.90 and bars["volatility"] == bars["inter_arrival"] == 0.80
    assert bars["spread_time_weighted"] is None
    assert report["facts"]["spread_time_weighted"]["passed"] is None
    held = [row["passed"] for row in report["facts"].values() if row["bar"] is not None]
    assert report["all_passed"] == all(p is not False for p in held)
    assert report["facts"]["spread"]["overlap"] is not None
    # the persistence reference: 14:24-14:30 of the real day against 14:30-14:36
    for fact, row in report["facts"].items():
        assert row["reference"] is None or 0.0 <= row["reference"] <= 1.0 + 1e-9, fact
    assert report["facts"]["spread"]["reference"] is not None
    assert not any("persistence" in note for note in report["notes"])
    # the exchangeable ceiling: each of the 3 rollouts left out once
    assert report["ceiling"]["draws"] == 3
    assert 0.0 <= report["ceiling"]["all_passed_share"] <= 1.0
    for fact, row in report["facts"].items():
        c = row["ceiling"]
        assert c is None or (0.0 <= c["q10"] <= c["median"] <= 1.0 + 1e-9), fact
        assert c is None or (row["overlap"] is not None and 0.0 <= c["rank"] <= 1.0), fact
    assert report["facts"]["spread"]["ceiling"] is not None
    for w in report["windows"]:  # each window scored on its own as well
        assert set(w["overlaps"]) == set(FACTS)
        assert all(v is None or 0.0 <= v <= 1.0 + 1e-9 for v in w["overlaps"].values())
    assert report["windows"][0]["overlaps"] != report["windows"][1]["overlaps"]
    budget = report["spread_budget"]
    assert set(budget) == {"real", "sim"} and set(budget["sim"]) == set(BUDGET_CLASSES)
    assert budget["real"]["cancel"]["events"] > 0 and budget["sim"]["passive"]["events"] > 0
    # the same seed reproduces the run exactly
    again = run_json(capsys, *args, "--rollouts", "3", "--seed", "7")
    assert {f: r["overlap"] for f, r in again["facts"].items()} == {
        f: r["overlap"] for f, r in report["facts"].items()
    }
    for w in report["windows"]:  # the real level-10 book is always full, the rollouts' drain
        assert w["summary"]["depth_refilled"] == 0
        assert w["summary"]["levels_per_side"]["real"] == 10.0
        assert 1.0 < w["summary"]["levels_per_side"]["sim"] < 9.5
    # --refill keeps the rollout books at the file's depth
    refilled = run_json(capsys, *args, "--rollouts", "3", "--seed", "7", "--refill")
    for w in refilled["windows"]:
        assert w["summary"]["depth_refilled"] > 0
        assert w["summary"]["levels_per_side"]["sim"] == 10.0
    assert refilled["facts"]["spread"]["overlap"] != report["facts"]["spread"]["overlap"]


def test_table_output_lists_every_fact(lobster_dir: Path, capsys):
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    code = main(
        ["realism", "--data", data, "--windows", "1", "--window", "2m", "--rollouts", "2",
         "--generator", "empirical", "--start", "15:00"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    for fact in FACTS:
        assert fact in out
    assert "spread budget" in out
    assert "book levels per side, mean per window: real 10.0 sim" in out
    header = f"{'fact':<24}{'overlap':>9}{'prev':>7}{'best':>7}{'ceil':>7}{'at bar':>8}{'rank':>6}"
    assert header in out
    assert "best real span of the training hours: " in out and " spans at the bar on every" in out
    assert "left-out rollouts at the bar on every fact: " in out and "% of 2" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["aggressive"]]
    assert len(rows) == 1 and rows[0][1] == "real" and rows[0][6] == "sim"
    assert "per window, overlap" not in out  # one window: its figures are the table's


def test_one_windows_own_overlaps_are_the_pooled_ones_and_the_table_shows_each(
    lobster_dir: Path, capsys
):
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    args = ["--data", data, "--window", "2m", "--rollouts", "2", "--start", "15:00"]
    one = run_json(capsys, *args, "--windows", "1")
    assert one["windows"][0]["overlaps"] == {f: r["overlap"] for f, r in one["facts"].items()}
    code = main(["realism", *args, "--windows", "2", "--generator", "empirical"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("per window, overlap"))
    assert lines[head].split()[-2:] == ["15:00", "15:02"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[head + 1 : head + 13]}
    held = [f for f in FACTS if bar_of(f) is not None]
    assert list(rows) == held and all(len(cells) == 2 for cells in rows.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such.zip"], "no such file"),
        (["--start", "25:00"], "not a time of day"),
        (["--window", "soon"], "not a duration"),
        (["--start", "15:50", "--windows", "2"], "outside the data"),
        (["--windows", "0"], "must be positive"),
        (["--rollouts", "0"], "not in the range 1<=x<=4096"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(lobster_dir, capsys, args, message):
    data = ["--data", str(lobster_zip(lobster_dir, "GOOG", 1))]
    code = main(["realism", *data, *args, "--generator", "empirical"])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_checkpoint_is_a_clear_error(lobster_dir, capsys, tmp_path):
    data = str(lobster_zip(lobster_dir, "GOOG", 1))
    code = main(["realism", "--data", data, "--model", str(tmp_path / "none.pt")])
    err = capsys.readouterr().err
    assert code != 0 and "no model checkpoint" in err and "--generator empirical" in err


def test_the_persistence_reference_is_the_span_just_before_the_windows(lobster_dir: Path):
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 10))
    stream = from_lobster(day)
    window = parse_duration("3m")
    tick = day.instrument.tick_size

    def facts(start: int) -> StylizedFacts:
        out = StylizedFacts()
        for w in range(2):
            s = start + w * window
            out.update(real_trajectory(day, stream, s, s + window, tick))
        return out

    at = parse_clock("14:30")
    kwargs = {"start_ns": at, "windows": 2, "window_ns": window}
    # the span before 14:30 compared with itself: every fact overlaps fully
    same = previous_span_overlaps(day, stream, facts(at - 2 * window), **kwargs)
    assert same is not None
    assert all(v is None or v == pytest.approx(1.0) for v in same.values())
    assert same["spread"] == pytest.approx(1.0)
    # the windows themselves differ from it
    ahead = previous_span_overlaps(day, stream, facts(at), **kwargs)
    assert ahead is not None and min(v for v in ahead.values() if v is not None) < 0.95
    # nothing before the open to compare with
    early = parse_clock("09:31")
    assert (
        previous_span_overlaps(day, stream, facts(early), **{**kwargs, "start_ns": early}) is None
    )


def test_the_best_real_analog_finds_the_windows_themselves_when_they_are_a_candidate(
    lobster_dir: Path,
):
    day = load_lobster(lobster_zip(lobster_dir, "AMZN", 5))
    stream = from_lobster(day)
    window, tick = parse_duration("3m"), day.instrument.tick_size
    at = parse_clock("11:00")  # on the 30-minute grid from the open
    real = StylizedFacts()
    for w in range(2):
        s = at + w * window
        real.add(window_facts(real_trajectory(day, stream, s, s + window, tick)))
    kwargs = {"windows": 2, "window_ns": window, "step_ns": parse_duration("30m")}
    analog = best_real_analog(day, stream, real, end_ns=parse_clock("14:30"), **kwargs)
    assert analog is not None
    assert (analog.start, analog.end) == ("11:00:00", "11:06:00")
    assert all(v is None or v == pytest.approx(1.0) for v in analog.overlaps.values())
    held = sum(1 for f in FACTS if bar_of(f) is not None and analog.overlaps[f] is not None)
    assert held == 10  # no 4- or 5-minute return in 3-minute windows
    assert analog.at_bar == held == analog.as_dict()["held_facts"]
    assert analog.spans == 9  # 10:00, 10:30, ... 14:00 (the file starts after 09:30:00)
    assert 1 <= analog.spans_at_bar < analog.spans
    # spans must end by end_ns: with the windows excluded, another span is the best
    before = best_real_analog(day, stream, real, end_ns=at, **kwargs)
    assert before is not None and before.spans == 2 and before.start != "11:00:00"
    assert before.at_bar < held or min(v for v in before.overlaps.values() if v) < 1.0
    assert best_real_analog(day, stream, real, end_ns=parse_clock("10:05"), **kwargs) is None


def test_an_early_window_has_no_persistence_reference_and_says_so(lobster_dir: Path, capsys):
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    args = ["--data", data, "--start", "09:31", "--windows", "1", "--window", "2m"]
    report = run_json(capsys, *args, "--rollouts", "2")
    assert all(row["reference"] is None for row in report["facts"].values())
    assert any(note.startswith("no persistence reference") for note in report["notes"])
    # one rollout leaves nothing to hold it against: no ceiling
    alone = run_json(capsys, *args, "--rollouts", "1")
    assert alone["ceiling"] is None
    assert all(row["ceiling"] is None for row in alone["facts"].values())


def test_durations_and_clock_times_parse():
    assert parse_duration("25m") == 25 * 60 * 10**9
    assert parse_duration("1h") == 3600 * 10**9
    assert parse_duration("500ms") == 500 * 10**6
    assert parse_clock("09:30:15") == (9 * 3600 + 30 * 60 + 15) * 10**9
    with pytest.raises(UnitError):
        parse_duration("-5m")
    with pytest.raises(UnitError):
        parse_clock("12:60")


CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "lmm-small.pt"


@pytest.mark.slow
def test_realism_with_the_trained_order_model(lobster_dir: Path, capsys):
    if not CHECKPOINT.exists():
        pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    code = main(
        ["realism", "--data", data, "--windows", "1", "--window", "5m", "--rollouts", "4",
         "--model", str(CHECKPOINT), "--json"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["generator"] == checkpoint_version(CHECKPOINT)
    assert report["windows"][0]["sim_orders_mean"] > 100


def _untimed(report: dict) -> dict:
    """A realism report without its wall-clock figures."""
    out = {k: v for k, v in report.items() if k not in ("seconds", "orders_per_s")}
    out["windows"] = [{k: v for k, v in w.items() if k != "seconds"} for w in report["windows"]]
    return out


def test_windows_forked_in_worker_processes_give_the_same_report(lobster_dir: Path, capsys):
    if not CHECKPOINT.exists():
        pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
    data = str(lobster_zip(lobster_dir, "AMZN", 5))
    args = ["realism", "--data", data, "--start", "14:40", "--windows", "2", "--window", "1m",
            "--rollouts", "3", "--seed", "5", "--json"]  # fmt: skip
    reports = []
    for jobs in ("1", "2"):
        code = main([*args, "--jobs", jobs])
        out = capsys.readouterr()
        assert code == 0, out.err
        reports.append(json.loads(out.out))
    one, two = reports
    assert one["windows"][0]["sim_orders_mean"] > 100
    assert _untimed(one) == _untimed(two)  # every overlap, fact summary and window, exactly


def test_spread_budget_attributes_each_spread_move_to_its_event_class():
    bid0, ask0 = 10_000, 11_000  # 10 ticks
    empty = EMPTY_BID_PRICE
    w = Trajectory(
        start_ns=0,
        end_ns=10,
        bid0=bid0,
        ask0=ask0,
        ts_ns=np.arange(6),
        # bid inside (narrows 5), sell hits it (widens 5), ask cancelled (widens 5),
        # deep ask (no move), the bid side emptied and refilled (one-sided: not counted)
        type=np.array([1, 0, 2, 0, 2, 1]),
        qty=np.full(6, 100),
        aggressive=np.array([False, True, False, False, False, False]),
        best_bid=np.array([10_500, 10_000, 10_000, 10_000, empty, 9_000]),
        best_ask=np.array([11_000, 11_000, 11_500, 11_500, 11_500, 11_500]),
    )
    b = spread_budget(w)
    rows = dict(zip(BUDGET_CLASSES, b.tolist(), strict=True))
    # events, narrowing events, ticks narrowed, widening events, ticks widened
    assert rows["passive"] == [3, 1, 5, 0, 0]
    assert rows["aggressive"] == [1, 0, 0, 1, 5]
    assert rows["cancel"] == [2, 0, 0, 1, 5]
    pooled = SpreadBudget()
    pooled.update(w)
    pooled.update(w)
    assert pooled.as_dict()["cancel"]["widened_ticks"] == 5.0  # per window


def _window(seed: int, spread_ticks: int, size: int) -> Trajectory:
    """A 3-minute window of 60 orders: one spread throughout, new orders of about ``size``."""
    rng = np.random.default_rng(seed)
    n = 60
    ts = np.sort(rng.integers(0, 180 * 10**9, n))
    bid = np.full(n, 100_000)
    return Trajectory(
        start_ns=0,
        end_ns=180 * 10**9,
        bid0=100_000,
        ask0=100_000 + 100 * spread_ticks,
        ts_ns=ts,
        type=rng.integers(0, 3, n),
        qty=size + rng.integers(0, 10, n),
        aggressive=rng.random(n) < 0.1,
        best_bid=bid,
        best_ask=bid + 100 * spread_ticks,
    )


def test_exchangeable_overlaps_leave_each_rollout_out_once():
    # window w, rollout r; rollout 2 of every window is unlike the others (wide, large orders)
    facts = [
        [window_facts(_window(10 * w + r, 9 if r == 2 else 3, 400 if r == 2 else 100))
         for r in range(4)]
        for w in range(2)
    ]  # fmt: skip
    draws = exchangeable_overlaps(facts)
    assert len(draws) == 4
    # draw 1 is exactly rollout 1 of each window against rollouts 0, 2, 3
    real, sim = StylizedFacts(), StylizedFacts()
    for window in facts:
        for r, f in enumerate(window):
            (real if r == 1 else sim).add(f)
    assert draws[1] == compare(real, sim)
    # spread: rollouts 0, 1, 3 sit at 3 ticks and rollout 2 at 9, so a left-out ordinary
    # rollout shares 2/3 of the others' mass and rollout 2 none of it
    assert [d["spread"] for d in draws] == pytest.approx([2 / 3, 2 / 3, 0.0, 2 / 3])
    ceiling = ExchangeableCeiling(draws)
    row = ceiling.fact("spread")
    assert row is not None and row["median"] == pytest.approx(2 / 3)
    assert row["at_bar"] == 0.0 and ceiling.all_passed_share == 0.0
    assert row["rank"] is None
    # rank: the share of left-out rollouts that scored no better than an observed overlap
    ranks = [ceiling.fact("spread", v)["rank"] for v in (-0.1, 0.0, 0.5, 0.7, 1.0)]  # type: ignore[index]
    assert ranks == [0.0, 0.25, 0.25, 1.0, 1.0]
    # identical rollouts forecast each other (up to the kernel bandwidth, which narrows with
    # the sample size: 1 rollout's samples against the same samples twice)
    same = [[window_facts(_window(5, 3, 100))] * 3]
    for d in exchangeable_overlaps(same):
        assert d["spread"] == 1.0 and d["volatility"] == pytest.approx(1.0)
        assert all(v is None or v > 0.95 for v in d.values()), d
    assert ExchangeableCeiling(exchangeable_overlaps(same)).all_passed_share == 1.0


def test_repeated_models_roll_out_a_mixture(lobster_dir: Path, capsys):
    if not CHECKPOINT.exists():
        pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
    data = str(lobster_zip(lobster_dir, "GOOG", 10))
    args = ["realism", "--data", data, "--start", "14:30", "--windows", "1", "--window", "1m",
            "--rollouts", "2", "--json"]  # fmt: skip
    model = ["--model", str(CHECKPOINT)]
    code = main([*args, *model, *model])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    one = checkpoint_version(CHECKPOINT)
    assert report["generator"] == f"{one}+{one}"
    assert report["windows"][0]["sim_orders_mean"] > 50
    # one missing member is the same clear error as one missing model
    code = main([*args, *model, "--model", "/no/such.pt"])
    err = capsys.readouterr().err
    assert code != 0 and "no model checkpoint at /no/such.pt" in err


@pytest.mark.parametrize(
    "text, value",
    [("0.9", 0.9), ("1,0.8,1,1", (1.0, 0.8, 1.0, 1.0)), (" 0 , 1,1, 2 ", (0.0, 1.0, 1.0, 2.0))],
)
def test_per_field_values_parse_one_number_or_four(text, value):
    assert PerFieldParam(0.0, 10.0).convert(text, None, None) == value


@pytest.mark.parametrize(
    "kind, text, message",
    [
        ("temperature", "1,2", "give one number or four"),
        ("temperature", "warm", "is not a number"),
        ("temperature", "-0.5", "-0.5 is not in [0, 10]"),
        ("top-p", "0", "0 is not in (0, 1]"),
        ("top-p", "1,1,1.5,1", "1.5 is not in (0, 1]"),
    ],
)
def test_bad_sampling_settings_are_one_clear_line(lobster_dir, capsys, kind, text, message):
    data = str(lobster_zip(lobster_dir, "GOOG", 1))
    code = main(["realism", "--data", data, f"--{kind}", text])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_sampling_settings_need_the_order_model(lobster_dir, capsys):
    data = str(lobster_zip(lobster_dir, "GOOG", 1))
    code = main(["realism", "--data", data, "--generator", "empirical", "--temperature", "1"])
    err = capsys.readouterr().err
    assert code != 0 and "use them with --generator lmm" in err


def test_the_sampling_help_states_the_samplers_own_defaults():
    from models.generator import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

    params = {p.name: p for p in realism_command.params}
    for name, default in (("temperature", DEFAULT_TEMPERATURE), ("top_p", DEFAULT_TOP_P)):
        stated = ",".join(f"{x:g}" for x in default)
        assert f"the sampler's default is {stated}." in params[name].help


def test_sampling_settings_reach_every_member_and_name_the_run():
    if not CHECKPOINT.exists():
        pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
    from models.generator import DEFAULT_TEMPERATURE, field_top_p

    gen, name = build_generator("lmm", (CHECKPOINT,), 100, sampling={"temperature": None})
    assert name == checkpoint_version(CHECKPOINT) and gen.temperature == DEFAULT_TEMPERATURE
    sampling = {"temperature": (1.0, 0.9, 1.0, 1.0), "top_p": 0.99}
    gen, name = build_generator("lmm", (CHECKPOINT,), 100, sampling=sampling)
    assert name == checkpoint_version(CHECKPOINT, sampling) != checkpoint_version(CHECKPOINT)
    assert gen.temperature == (1.0, 0.9, 1.0, 1.0) and gen.top_p == field_top_p(0.99)
    mix, name = build_generator("lmm", (CHECKPOINT, CHECKPOINT), 100, sampling=sampling)
    member = checkpoint_version(CHECKPOINT, sampling)
    assert name == f"{member}+{member}"
    assert all(m.temperature == (1.0, 0.9, 1.0, 1.0) for m in mix.members)
    # the sampler's defaults, set explicitly, are no change
    _, name = build_generator("lmm", (CHECKPOINT,), 100, sampling={"temperature": (1, 0.8, 1, 1)})
    assert name == checkpoint_version(CHECKPOINT)


def test_the_report_names_the_sampling_a_checkpoint_carries(tmp_path):
    if not CHECKPOINT.exists():
        pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
    own = tmp_path / "tuned.pt"
    own.write_bytes(CHECKPOINT.read_bytes())
    meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    meta["sampling"] = {"temperature": 1.0, "top_p": [1.0, 0.8, 1.0, 1.0]}
    own.with_suffix(".json").write_text(json.dumps(meta))
    gen, name = build_generator("lmm", (own,), 100)
    carried = {"temperature": 1.0, "top_p": (1.0, 0.8, 1.0, 1.0)}
    assert name == checkpoint_version(CHECKPOINT, carried).replace("lmm-small", "tuned")
    assert gen.top_p == (1.0, 0.8, 1.0, 1.0)
    _, name = build_generator("lmm", (own,), 100, sampling={"top_p": 0.9})  # a run's own wins
    assert name == checkpoint_version(own, {"top_p": 0.9}) != checkpoint_version(own)
