"""The data commands from a user's seat: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from surveillance.cli import main
from tests.conftest import lobster_zip


def test_book_check_json_on_a_level1_zip(lobster_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["book-check", "--message", str(lobster_zip(lobster_dir, "GOOG", 1)), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("rows", "match", "best_level_match", "entered_from_depth", "unknown_order_ids"):
        assert key in report
    assert report["rows"] == 49_482
    assert report["events_per_s"] > 0


def test_book_check_on_a_missing_file_prints_one_line_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["book-check", "--message", str(tmp_path / "missing.zip"), "--json"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip().count("\n") == 0 and "no such file" in err


def test_convert_writes_normalized_events(
    lobster_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "amzn.parquet"
    assert main(["convert", str(lobster_zip(lobster_dir, "AMZN", 1)), str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.exists() and summary["events"] > summary["synthetic"] > 0


def test_console_script_reports_unknown_options_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "surveillance.cli", "book-check", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "bogus" in proc.stderr


def test_detection_commands_share_the_calibrated_rollout_count(
    lobster_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from surveillance.cli.commands.replay import command as replay_command
    from surveillance.cli.options import MIN_DETECTION_ROLLOUTS
    from surveillance.detection.scoring import DetectionConfig

    # the bundled calibrations were fitted with the detection default; the CLI reads it there
    rollouts = next(p for p in replay_command.params if p.name == "rollouts")
    assert rollouts.default == DetectionConfig().rollouts
    data = str(lobster_zip(lobster_dir, "GOOG", 1))
    for command in (["replay", data, "--out", "x.jsonl"], ["evaluate"], ["demo", data]):
        code = main([*command, "--rollouts", str(MIN_DETECTION_ROLLOUTS - 1)])
        err = capsys.readouterr().err
        assert code == 2 and "'--rollouts': 2 is not in the range 3<=x<=4096" in err, command


def test_model_given_several_times_is_a_mixture() -> None:
    import click
    from click.testing import CliRunner

    from surveillance.cli.options import detection_options, detection_settings

    @click.command()
    @detection_options(calibration=False)
    def probe(**options):
        click.echo(repr(detection_settings(options).model))

    def model(*args: str) -> str:
        return CliRunner().invoke(probe, list(args)).output.strip()

    assert model() == "None"
    assert model("--model", "a.pt") == "'a.pt'"
    assert model("--model", "a.pt", "--model", "b.pt") == "('a.pt', 'b.pt')"
