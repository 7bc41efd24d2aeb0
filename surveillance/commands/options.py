"""Click options that several commands share, so they read and validate the same way."""

from __future__ import annotations

import click

# ``surveillance.scoring.DetectionConfig.rollouts``: what the bundled calibrations were fitted
# with (a test holds the two equal; the CLI does not import the detection stack to start).
DETECTION_ROLLOUTS = 16
MAX_ROLLOUTS = 4096
# The detector's leave-one-out null compares each rollout with the pool of the others.
MIN_DETECTION_ROLLOUTS = 3


def rollouts_option(
    default: int = DETECTION_ROLLOUTS,
    minimum: int = MIN_DETECTION_ROLLOUTS,
    help: str = "Simulated futures per window.",
):
    """``--rollouts N``: simulated futures forked per window, ``minimum..MAX_ROLLOUTS``."""
    return click.option(
        "--rollouts",
        default=default,
        show_default=True,
        type=click.IntRange(minimum, MAX_ROLLOUTS),
        help=help,
    )
