"""``surveillance replay`` end to end on real data (empirical generator, short windows)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from simulator.lobster import load_lobster
from simulator.normalized import lobster_to_frame, write_events
from surveillance.cli import main
from surveillance.detection.detector import Calibration
from tests.conftest import lobster_zip

OPEN_NS = 34_200 * 10**9


@pytest.fixture(scope="module")
def first_hour(lobster_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 50 minutes of AMZN (level 1) as a LOBSTER CSV pair, one row damaged."""
    out = tmp_path_factory.mktemp("amzn")
    with zipfile.ZipFile(lobster_zip(lobster_dir, "AMZN", 1)) as zf:
        zf.extractall(out)
    message = next(out.glob("*_message_1.csv"))
    book = next(out.glob("*_orderbook_1.csv"))
    day = load_lobster(message)
    n = int((day.messages.ts_ns < OPEN_NS + 50 * 60 * 10**9).sum())
    lines = message.read_text().splitlines()[:n]
    lines[500] = "34250.1,1,not-a-number,100,2230000,1"
    message.write_text("\n".join(lines) + "\n")
    book.write_text("\n".join(book.read_text().splitlines()[:n]) + "\n")
    return message


def run(args: list[str]) -> int:
    return main(["replay", *args])


def test_replay_writes_one_record_per_window_with_the_required_fields(
    first_hour: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, report = tmp_path / "scores.jsonl", tmp_path / "report.html"
    code = run(
        [
            str(first_hour),
            "--window",
            "10m",
            "--rollouts",
            "4",
            "--generator",
            "empirical",
            "--out",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "1 malformed rows skipped" in stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["window_start"][11:16] for r in records] == [
        "09:30",
        "09:40",
        "09:50",
        "10:00",
        "10:10",
    ]
    assert records[0]["window_start"] == "2012-06-21T09:30:00-04:00"
    assert records[0]["score"] is None  # the first window has no earlier flow as context
    scored = records[1]
    assert scored["instrument"] == "AMZN"
    for key in ("window_end", "score", "p_value", "alert", "facts", "baselines"):
        assert key in scored
    assert isinstance(scored["score"], float)
    assert set(scored["facts"]["spread"]) >= {
        "ovl",
        "null_mean",
        "null_std",
        "z",
        "p_value",
        "null",
    }
    assert len(scored["facts"]["spread"]["null"]) == 4
    assert set(scored["baselines"]) == {"historical_diff", "spread_zscore"}
    assert records[-1]["closed_by"] == "end_of_stream"
    html = report.read_text()
    assert "AMZN" in html and "<svg" in html


def test_same_seed_same_output(first_hour: Path, tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.jsonl"
        assert (
            run(
                [
                    str(first_hour),
                    "--window",
                    "10m",
                    "--rollouts",
                    "4",
                    "--generator",
                    "empirical",
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_normalized_input_gives_the_same_windows(first_hour: Path, tmp_path: Path) -> None:
    events = tmp_path / "amzn.parquet"
    write_events(lobster_to_frame(load_lobster(first_hour)), events)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["--window", "10m", "--rollouts", "4", "--generator", "empirical"]
    assert run([str(first_hour), *common, "--out", str(a)]) == 0
    assert (
        run(
            [
                str(events),
                "--format",
                "normalized",
                "--date",
                "2012-06-21",
                *common,
                "--out",
                str(b),
            ]
        )
        == 0
    )
    ra = [json.loads(x) for x in a.read_text().splitlines()]
    rb = [json.loads(x) for x in b.read_text().splitlines()]
    assert [r["window_start"] for r in ra] == [r["window_start"] for r in rb]
    # The damaged add's later execution finds nothing: the book is suspect from that fault.
    # The LOBSTER file's book rows are the feed's snapshots and repair it within 10 seconds;
    # the normalized file carries none, so its later windows stay degraded (never scored).
    status = [r["detail"].get("status") for r in ra]
    assert status == ["degraded", None, None, None, None]
    assert [r["detail"].get("status") for r in rb] == ["degraded"] * 5
    assert ra[0]["detail"]["faults"] == rb[0]["detail"]["faults"] == {"unresolved_cancels": 1}
    assert all(r["score"] is None and not r["alert"] for r in rb)
    assert all(isinstance(r["score"], float) for r in ra[1:])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/file.zip"], "no such file"),
        (["{first}", "--format", "csv"], "format"),
        (["{first}", "--window", "soon"], "not a duration"),
        (["{first}", "--calibration", "/nonexistent.json"], "calibration"),
        (["{first}", "--temperature", "1"], "use them with --generator lmm"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    first_hour: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    args = [a.replace("{first}", str(first_hour)) for a in args]
    code = run([*args, "--generator", "empirical", "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and message in err[0]


def test_sampling_set_for_a_replay_names_its_model_version(
    first_hour: Path, tmp_path: Path
) -> None:
    """``--top-p`` reaches the order model: the records carry the version of a model sampled
    so, which the bundled calibration (fitted with the checkpoint's own sampling) does not
    match, so ``auto`` calibrates on the replay itself."""
    from tests.conftest import checkpoint_version

    # the first 11 minutes: two 5-minute windows, the second scored with the first as context
    book = next(first_hour.parent.glob("*_orderbook_1.csv"))
    day = load_lobster(first_hour)
    n = int((day.messages.ts_ns < OPEN_NS + 11 * 60 * 10**9).sum())
    short = tmp_path / first_hour.name
    short.write_text("\n".join(first_hour.read_text().splitlines()[:n]) + "\n")
    (tmp_path / book.name).write_text("\n".join(book.read_text().splitlines()[:n]) + "\n")
    out = tmp_path / "scores.jsonl"
    args = [str(short), "--window", "5m", "--rollouts", "3", "--out", str(out)]
    assert run([*args, "--top-p", "1,0.8,1,1"]) == 0
    records = [json.loads(x) for x in out.read_text().splitlines()]
    tuned = checkpoint_version(None, {"top_p": (1.0, 0.8, 1.0, 1.0)})
    assert records and {r["model_version"] for r in records} == {tuned}
    assert tuned != checkpoint_version(None)
    assert any(r["score"] is not None for r in records)


def test_a_calibration_file_sets_every_windows_threshold(
    first_hour: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cal = Calibration.fit([0.5, 1.0, 1.5, 2.0], far=0.25, method="test")
    cal.model_version = "empirical-v1"
    cal.save(tmp_path / "cal.json")
    out = tmp_path / "scores.jsonl"
    args = [str(first_hour), "--window", "10m", "--rollouts", "4", "--generator", "empirical"]
    code = run([*args, "--calibration", str(tmp_path / "cal.json"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    scored = [r for r in records if r["score"] is not None]
    assert scored and all(r["threshold"] == cal.threshold for r in scored)
    assert all(r["alert"] == (r["score"] > cal.threshold) for r in scored)


def test_a_case_replay_scores_only_its_windows_exactly_as_the_full_replay(
    first_hour: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = [str(first_hour.parent), "--window", "5m", "--rollouts", "3", "--generator", "empirical"]
    full, case = tmp_path / "full.jsonl", tmp_path / "case.jsonl"
    assert run([*base, "--out", str(full)]) == 0  # a directory of days: the one CSV pair
    assert run([*base, "--from", "09:47", "--to", "09:56", "--out", str(case)]) == 0
    every = [json.loads(x) for x in full.read_text().splitlines()]
    some = [json.loads(x) for x in case.read_text().splitlines()]
    # windows 09:45, 09:50 and 09:55 overlap the case; grid, books and context are unchanged
    starts = [(r["window_start_ns"] - OPEN_NS) // 60 // 10**9 for r in some]
    assert starts == [15, 20, 25]
    assert some == [
        r for r in every if r["window_start_ns"] in {s["window_start_ns"] for s in some}
    ]
    capsys.readouterr()
    assert run([*base, "--from", "09:47", "--out", str(case)]) == 2
    assert "--from and --to go together" in capsys.readouterr().err
    assert run([*base, "--from", "09:56", "--to", "09:47", "--out", str(case)]) == 2
    assert run([str(tmp_path), "--out", str(case)]) == 2
    assert "no lobster files" in capsys.readouterr().err


def test_a_case_across_days_scores_its_windows_on_each_day_and_skips_days_outside(
    first_hour: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    days = tmp_path / "days"
    days.mkdir()
    for date in ("2012-06-21", "2012-06-22", "2012-06-25"):  # the same hour, on three dates
        for f in first_hour.parent.glob("*.csv"):
            (days / f.name.replace("2012-06-21", date)).write_bytes(f.read_bytes())
    base = [str(days), "--window", "10m", "--rollouts", "3", "--generator", "empirical"]
    out = tmp_path / "case.jsonl"
    case = ["--from", "2012-06-21 10:05", "--to", "2012-06-22T09:45"]
    assert run([*base, *case, "--out", str(out)]) == 0, capsys.readouterr().err
    records = [json.loads(x) for x in out.read_text().splitlines()]
    by_day = {}
    for r in records:
        by_day.setdefault(r["window_start"][:10], []).append(
            (r["window_start_ns"] - OPEN_NS) // 60 // 10**9
        )
    # the first day from its 10:00 window on, the second up to its 09:40 window, not the third
    assert by_day == {"2012-06-21": [30, 40], "2012-06-22": [0, 10]}
    assert run([*base, "--from", "2012-06-21 10:05", "--to", "09:45", "--out", str(out)]) == 2
    assert "date at both ends" in capsys.readouterr().err


def test_a_replay_with_a_fork_cache_reuses_its_forks_and_writes_the_same_records(
    first_hour: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "forks"
    base = [str(first_hour), "--window", "10m", "--rollouts", "4", "--generator", "empirical"]
    plain, cold, warm = (tmp_path / f"{n}.jsonl" for n in ("plain", "cold", "warm"))
    assert run([*base, "--out", str(plain)]) == 0
    assert run([*base, "--sim-cache", str(cache), "--out", str(cold)]) == 0
    forks = sorted(cache.glob("*.npz"))
    scored = [json.loads(x) for x in plain.read_text().splitlines()]
    assert len(forks) == sum(r["score"] is not None for r in scored) > 0
    stamp = [f.stat().st_mtime_ns for f in forks]
    assert run([*base, "--sim-cache", str(cache), "--out", str(warm)]) == 0
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.npz"))] == stamp  # all hits
    assert plain.read_bytes() == cold.read_bytes() == warm.read_bytes()
