"""The ``surveillance`` command line. Each command lives in ``surveillance/cli/commands/<name>.py``
and exposes a click command named ``command``; this file only wires them together.

User errors (missing files, bad formats, bad options) become one clear line on stderr and a
non-zero exit; commands raise ``click.ClickException`` (or a typed domain error that
``main`` translates) instead of printing tracebacks.
"""

from __future__ import annotations

import importlib

import click

# Module names under surveillance.cli.commands, in help order.
COMMANDS = [
    "book_check",
    "convert",
    "fidelity",
    "feed",
    "worker",
    "realism",
    "forecast",
    "train",
    "replay",
    "rescore",
    "evaluate",
    "impact",
    "demo",
    "console",
    "user",
    "data",
    "execution",
]


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name.replace("_", "-") for name in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = cmd_name.replace("-", "_")
        if module not in COMMANDS:
            return None
        # Imported lazily so that `surveillance book-check` never pays for torch or faust.
        return importlib.import_module(f"surveillance.cli.commands.{module}").command


@click.group(cls=_Group)
@click.version_option(package_name="mars-surveillance")
def cli() -> None:
    """Simulation-based market surveillance (MarS-style order model, overlap-scored alerts)."""


def main(argv: list[str] | None = None) -> int:
    from simulator.lobster import FeedError

    try:
        cli.main(args=argv, prog_name="surveillance", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except (FeedError, FileNotFoundError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    return 0
