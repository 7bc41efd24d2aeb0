"""Time of day of a window: the open, midday and the close of its venue's session.

A venue's open and close are not its midday: the flow of the first minutes (the opening
auction's aftermath) and of the last ones (orders for the closing price) differ from the
hours an order model and a calibration mostly see, so a fact's real-versus-simulation z
behaves differently there. The calibration (``surveillance.detection.detector.Calibration``)
learns that per bucket; this module only says which bucket a window is in.

Buckets are set a priori, not fitted on the evaluated windows: a window is ``close`` when it
ends in the session's last ``close_ns`` (30 minutes), ``open`` when it starts in its first
``open_ns`` (30 minutes), else ``midday``. A venue that never closes (crypto) has no session
and every window is ``midday``.

>>> from simulator.units import parse_clock
>>> tod, session = TimeOfDay(), (parse_clock("09:30"), parse_clock("16:00"))
>>> [tod.bucket(parse_clock(a), parse_clock(b), session)
...  for a, b in (("09:55", "10:20"), ("10:00", "10:25"), ("15:05", "15:30"), ("15:10", "15:35"))]
['open', 'midday', 'midday', 'close']
>>> tod.bucket(0, 10, None)
'midday'
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.units import NS_PER_MIN

OPEN, MIDDAY, CLOSE = "open", "midday", "close"
BUCKETS = (OPEN, MIDDAY, CLOSE)
REFERENCE = MIDDAY  # the bucket an instrument's own norms are fitted on


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """Where the open and the close buckets end, from the session's open and close."""

    open_ns: int = 30 * NS_PER_MIN
    close_ns: int = 30 * NS_PER_MIN

    def __post_init__(self) -> None:
        if self.open_ns < 0 or self.close_ns < 0:
            raise ValueError("time-of-day buckets must have non-negative lengths")

    def bucket(self, start_ns: int, end_ns: int, session: tuple[int, int] | None) -> str:
        """The bucket of the window ``[start_ns, end_ns)`` in the session ``(open, close)``
        (same clock); the close wins over the open for a window that touches both."""
        if session is None:
            return MIDDAY
        opened, closes = session
        if end_ns > closes - self.close_ns:
            return CLOSE
        if start_ns < opened + self.open_ns:
            return OPEN
        return MIDDAY

    def as_dict(self) -> dict[str, int]:
        return {"open_ns": self.open_ns, "close_ns": self.close_ns}
