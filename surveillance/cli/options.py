"""Click options that several commands share, so they read and validate the same way."""

from __future__ import annotations

import click

MAX_ROLLOUTS = 4096
# The detector's leave-one-out null compares each rollout with the pool of the others.
MIN_DETECTION_ROLLOUTS = 3


def rollouts_option(
    default: int | None = None,
    minimum: int = MIN_DETECTION_ROLLOUTS,
    help: str = "Simulated futures per window.",
):
    """``--rollouts N``: simulated futures forked per window, ``minimum..MAX_ROLLOUTS``; by
    default the detection's (``DetectionConfig.rollouts``, what the bundled calibrations
    were fitted with)."""
    if default is None:
        from surveillance.detection.scoring import DetectionConfig

        default = DetectionConfig().rollouts
    return click.option(
        "--rollouts",
        default=default,
        show_default=True,
        type=click.IntRange(minimum, MAX_ROLLOUTS),
        help=help,
    )


class PerFieldParam(click.ParamType):
    """One number for every field of an order token (type, price, volume, interval) or four,
    comma-separated: ``0.9`` or ``1,0.8,1,1``. Each must lie in ``[low, high]``
    (``low_open``: ``(low, high]``)."""

    name = "x or t,p,v,i"

    def __init__(self, low: float, high: float, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        if isinstance(value, float | tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            self.fail(f"{value!r} is not a number or four comma-separated numbers", param, ctx)
        if len(numbers) not in (1, 4):
            fields = "type, price, volume, interval"
            self.fail(f"{value!r}: give one number or four ({fields})", param, ctx)
        low = f"({self.low:g}" if self.low_open else f"[{self.low:g}"
        for x in numbers:
            if not (self.low < x if self.low_open else self.low <= x) or not x <= self.high:
                self.fail(f"{x:g} is not in {low}, {self.high:g}]", param, ctx)
        return numbers[0] if len(numbers) == 1 else tuple(numbers)


def sampling_options(recorded: bool = False):
    """``--temperature`` and ``--top-p``: how an order model samples its rollouts (default: the
    checkpoint's own, else the sampler's, ``models.generator.DEFAULT_TEMPERATURE`` /
    ``DEFAULT_TOP_P``). ``recorded``: the training command, which writes them into the
    checkpoint it makes."""
    where = (
        " Recorded in the checkpoint: its rollouts sample with it."
        if recorded
        else " Default: the checkpoint's own, else the sampler's."
    )

    def decorate(command):
        command = click.option(
            "--top-p",
            "top_p",
            type=PerFieldParam(0.0, 1.0, low_open=True),
            default=None,
            help="Nucleus mass each token field samples from, one value or four (type, price, "
            "volume, interval); the sampler's default is 1,0.95,1,1." + where,
        )(command)
        return click.option(
            "--temperature",
            type=PerFieldParam(0.0, 10.0),
            default=None,
            help="Sampling temperature, one value or four (type, price, volume, interval; 0: "
            "greedy); the sampler's default is 1,0.8,1,1." + where,
        )(command)

    return decorate


def sampling_settings(generator: str, **options: object) -> dict[str, object]:
    """The ``sampling_options`` a user set (``temperature=``, ``top_p=``; None: not set), for a
    run of the ``generator`` kind: only the order model (``lmm``) takes them."""
    settings = {k: v for k, v in options.items() if v is not None}
    if settings and generator != "lmm":
        what = "--temperature and --top-p set how the order model samples"
        raise click.BadParameter(f"{what}: use them with --generator lmm")
    return settings


def detection_options(window: bool = True, calibration: bool = True):
    """The options of ``DetectionSettings`` (``surveillance.detection.settings``): one set for
    every command that runs the detector; ``detection_settings`` reads them back."""

    def decorate(command):
        options = []
        if window:
            options.append(
                click.option(
                    "--window", default="25m", show_default=True, help="Window length (25m, 90s)."
                )
            )
        options += [
            rollouts_option(),
            click.option(
                "--seed", default=0, show_default=True, help="Seed (same seed, same output)."
            ),
            click.option(
                "--generator",
                type=click.Choice(["lmm", "empirical"]),
                default="lmm",
                show_default=True,
                help="Order model: the trained LMM, or i.i.d. empirical flow.",
            ),
            click.option(
                "--model",
                multiple=True,
                type=click.Path(dir_okay=False),
                help="LMM checkpoint (default: the bundled one). Repeat it to roll out a "
                "mixture: rollout i is driven by model i mod M.",
            ),
            click.option(
                "--device", default="cpu", show_default=True, help="torch device for the LMM."
            ),
            sampling_options(),
        ]
        if calibration:
            options += [
                click.option(
                    "--calibration",
                    default="auto",
                    show_default=True,
                    help="auto (the calibration bundled for the model), none (never alert), "
                    "self (fit the threshold on this run's windows) or a calibration JSON.",
                ),
                click.option(
                    "--far",
                    default=0.05,
                    show_default=True,
                    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
                    help="Target false-alarm rate (for self calibration).",
                ),
            ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def detection_settings(params: dict[str, object]):
    """``DetectionSettings`` from the options ``detection_options`` added (popped from
    ``params``); a bad combination is a usage error."""
    from simulator.units import UnitError, parse_duration
    from surveillance.detection.settings import DetectionSettings, SettingsError

    generator = str(params.pop("generator"))
    sampling = sampling_settings(
        generator, temperature=params.pop("temperature"), top_p=params.pop("top_p")
    )
    window = params.pop("window", "25m")
    try:
        window_ns = parse_duration(str(window))
    except UnitError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    try:
        return DetectionSettings(
            window_ns=window_ns,
            rollouts=int(params.pop("rollouts")),  # type: ignore[call-overload]
            seed=int(params.pop("seed")),  # type: ignore[call-overload]
            generator=generator,  # type: ignore[arg-type]
            model=_models(params.pop("model")),
            device=str(params.pop("device")),
            sampling=sampling,  # type: ignore[arg-type]
            calibration=str(params.pop("calibration", "auto")),
            far=float(params.pop("far", 0.05)),  # type: ignore[arg-type]
        )
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _models(given: object) -> str | tuple[str, ...] | None:
    """``--model`` (click gives a tuple), given once, several times or not at all."""
    models = tuple(str(m) for m in given)  # type: ignore[attr-defined]
    return models[0] if len(models) == 1 else (models or None)
