"""``surveillance train``: train the order model (Large Market Model) on LOBSTER days."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from surveillance.cli.options import PerFieldParam, sampling_options

_ROOT = Path(__file__).resolve().parents[3]


@click.command("train")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory holding the LOBSTER zips (default: the training days through the data "
    "registry, `surveillance data`).",
)
@click.option(
    "--file",
    "files",
    multiple=True,
    help="A zip in --data-dir to train on (repeatable; default: GOOG level 10 and AMZN level 5).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Train on one venue file instead (Bitstamp log, DBN, normalized events; --format); "
    "its instrument's tick and session go into the tokenizer and the checkpoint.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "lobster", "databento", "bitstamp", "normalized"]),
    default="auto",
    show_default=True,
    help="Format of --data.",
)
@click.option(
    "--train-until",
    default=None,
    help="With --data: read only events before this time of day (HH:MM, venue time); the "
    "validation is the --val-minutes before it, so later hours stay unseen for evaluation.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=_ROOT / "models" / "checkpoints" / "lmm-small",
    show_default="models/checkpoints/lmm-small",
    help="Checkpoint stem: writes STEM.pt (state_dict) and STEM.json (meta).",
)
@click.option("--steps", default=2400, show_default=True, help="Optimizer steps.")
@click.option("--max-minutes", default=20.0, show_default=True, help="Stop training after this.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=2e-3, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--eval-every", default=200, show_default=True, help="Steps between validations.")
@click.option("--val-minutes", default=90.0, show_default=True, help="Held-out end of each day.")
@click.option("--layers", default=2, show_default=True)
@click.option("--d-model", default=96, show_default=True)
@click.option("--heads", default=4, show_default=True)
@click.option("--block-size", default=128, show_default=True, help="Context in orders.")
@click.option("--dropout", default=0.1, show_default=True)
@click.option(
    "--head",
    type=click.Choice(["factorized", "flat"]),
    default="factorized",
    show_default=True,
    help="Output head (flat: one 49,152-way softmax).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="torch device: cpu, cuda, cuda:1, or auto (a GPU if one is available).",
)
@click.option(
    "--max-orders",
    type=int,
    default=None,
    help="Use only the first N orders of each day (smoke runs).",
)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
@click.option(
    "--level-gaps/--no-level-gaps",
    default=False,
    show_default=True,
    help="Context features also give each level's distance in ticks from its side's best.",
)
@click.option(
    "--sweep/--no-sweep",
    default=False,
    show_default=True,
    help="Tokenizer v4: one volume slot means 'takes exactly what rests up to its price'.",
)
@click.option(
    "--flow/--no-flow",
    default=False,
    show_default=True,
    help="Context features also give moving averages of the order flow (the share of cancels, "
    "marketable orders and bids, sizes, intervals) over the last hundreds and thousands of orders.",
)
@click.option(
    "--feed-depth/--no-feed-depth",
    default=False,
    show_default=True,
    help="Context features also give how many levels per side the feed shows.",
)
@click.option(
    "--relative-units/--no-relative-units",
    default=False,
    show_default=True,
    help="Read order sizes and intervals against the instrument's own recent scale (geometric "
    "mean limit-order size, mean time between orders over the last 256 orders), so the model "
    "carries to instruments of other sizes and activity.",
)
@click.option(
    "--level-dropout",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of training windows whose books show each side's best levels only (1 to "
    "depth - 1 of them, drawn per side), as a drained rollout book does.",
)
@sampling_options(recorded=True)
def command(
    data_dir: Path | None,
    files: tuple[str, ...],
    data: Path | None,
    fmt: str,
    train_until: str | None,
    out: Path,
    steps: int,
    max_minutes: float,
    batch_size: int,
    lr: float,
    eval_every: int,
    val_minutes: float,
    layers: int,
    d_model: int,
    heads: int,
    block_size: int,
    dropout: float,
    head: str,
    seed: int,
    device: str,
    max_orders: int | None,
    threads: int | None,
    level_gaps: bool,
    sweep: bool,
    flow: bool,
    feed_depth: bool,
    relative_units: bool,
    level_dropout: float,
    temperature: float | tuple[float, ...] | None,
    top_p: float | tuple[float, ...] | None,
) -> None:
    """Train the order model and write a checkpoint with its validation report (on LOBSTER
    days, or on one venue file with --data).

    Holds out the last --val-minutes of every day and reports the validation loss (nats per
    order token) of the model against add-k unigram and bigram baselines fitted on the
    training part. Deterministic for a seed on one device and thread count.
    """
    import torch  # lazily: other commands never pay for torch

    from models.model import LMMConfig
    from models.train import DEFAULT_FILES, TrainConfig, train

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.ClickException(f"--device {device}: CUDA is not available")
    if threads is not None:
        torch.set_num_threads(threads)
    if d_model % heads:
        raise click.ClickException("--d-model must be a multiple of --heads")
    from simulator.units import parse_clock

    if train_until is not None and data is None:
        raise click.ClickException("--train-until needs --data (a venue file)")
    if data is not None and files:
        raise click.ClickException("--data trains on one venue file: drop --file")
    if relative_units and (sweep or flow):
        raise click.ClickException("--relative-units is not implemented with --sweep or --flow")
    if data is None and data_dir is None:
        data_dir = _registry_dir(tuple(files) or DEFAULT_FILES)
    cfg = TrainConfig(
        data_dir=data_dir if data_dir is not None else Path("."),
        data=data,
        fmt=fmt,
        train_until_ns=parse_clock(train_until) if train_until is not None else None,
        files=tuple(files) or DEFAULT_FILES,
        out=out,
        seed=seed,
        device=device,
        steps=steps,
        max_minutes=max_minutes,
        batch_size=batch_size,
        lr=lr,
        eval_every=eval_every,
        val_minutes=val_minutes,
        max_orders=max_orders,
        level_gaps=level_gaps,
        sweep=sweep,
        flow=flow,
        feed_depth=feed_depth,
        relative_units=relative_units,
        level_dropout=level_dropout,
        temperature=temperature,  # type: ignore[arg-type]
        top_p=top_p,  # type: ignore[arg-type]
        model=LMMConfig(
            n_layer=layers,
            n_head=heads,
            d_model=d_model,
            block_size=block_size,
            dropout=dropout,
            head=head,
        ),
    )
    result = train(cfg, log=click.echo, command=_command_line(click.get_current_context()))
    click.echo(
        f"validation nats/token: model {result.val_loss:.4f}, "
        f"unigram {result.unigram_loss:.4f}, bigram {result.bigram_loss:.4f}"
    )


def _command_line(ctx: click.Context) -> str:
    """The full command that reproduces this run (paths relative to the repository root)."""
    parts = ["surveillance", "train"]
    per_field = {p.name for p in ctx.command.params if isinstance(p.type, PerFieldParam)}
    for name, value in ctx.params.items():
        flag = "--" + {"files": "file", "fmt": "format"}.get(name, name.replace("_", "-"))
        if value is None:
            continue
        if isinstance(value, bool):  # an on/off flag
            parts.append(flag if value else "--no-" + flag[2:])
            continue
        if name in per_field:  # one value or four, comma-separated
            values = value if isinstance(value, tuple) else (value,)
            parts += [flag, ",".join(f"{float(v):g}" for v in values)]
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Path):
                v = os.path.relpath(v.resolve(), _ROOT)
            parts += [flag, str(v)]
    return shlex.join(parts)


def _registry_dir(files: tuple[str, ...]) -> Path:
    """The one folder holding every training file, fetched through the data registry."""
    from surveillance.datasets import DATASETS, DataUnavailable, Registry

    registry = Registry.from_env()
    by_file = {d.filename: d.name for d in DATASETS.values()}
    folders = set()
    for f in files:
        if f not in by_file:
            raise click.ClickException(f"{f} is not in the data registry: pass --data-dir")
        try:
            folders.add(registry.path(by_file[f]).parent)
        except DataUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    if len(folders) != 1:
        raise click.ClickException(
            f"the training files lie in {len(folders)} folders: fetch them into one "
            "(`surveillance data fetch`) or pass --data-dir"
        )
    return folders.pop()
