"""``surveillance data``: the datasets the project knows, fetched once and read locally."""

from __future__ import annotations

import click


@click.group("data")
def command() -> None:
    """The data registry: list, fetch and locate datasets (hash-checked; SURV_DATA_DIR moves
    the cache, SURV_DATA_MIRROR points at a mirror URL or directory)."""


@command.command("list")
def list_() -> None:
    """Every dataset: name, venue, instrument, date, levels, size and where it is."""
    from surveillance.datasets import DATASETS, Registry

    registry = Registry.from_env()
    rows = [("name", "venue", "instrument", "date", "levels", "size", "where")]
    for d in DATASETS.values():
        size = registry.size(d)
        rows.append(
            (
                d.name,
                d.venue,
                d.instrument,
                d.date,
                str(d.levels) if d.levels else "all",
                f"{size / 1e6:.1f} MB" if size is not None else "?",
                registry.state(d),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@command.command("fetch")
@click.argument("names", nargs=-1, required=True)
def fetch(names: tuple[str, ...]) -> None:
    """Fetch datasets into the cache (a progress bar each; mirrored or cached ones are only
    checked)."""
    from surveillance.datasets import DataUnavailable, Registry

    registry = Registry.from_env()
    for name in names:
        try:
            path = registry.path(name, progress=True)
        except DataUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{name}: {path}")


@command.command("path")
@click.argument("name")
def path(name: str) -> None:
    """Print the local path of a dataset, fetching it first if needed."""
    from surveillance.datasets import DataUnavailable, Registry

    try:
        click.echo(str(Registry.from_env().path(name)))
    except DataUnavailable as exc:
        raise click.ClickException(str(exc)) from None
