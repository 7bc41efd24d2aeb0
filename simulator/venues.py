"""Venues' published facts for products whose data files do not carry them: one table.

A Databento MBO record carries no tick and no trading hours; an instrument definition record
(when the file has one) carries the tick and the product (``asset``), but still no hours. The
hours come from the venue's published schedule for the product's group, here, and travel on in
the ``Instrument`` (``simulator.sessions`` reads them from there, never from this table).

CME Globex (https://www.cmegroup.com/trading-hours.html): equity index, energy and metals
futures trade Sunday-Friday 17:00-16:00 Chicago time with a daily 16:00-17:00 halt; a session
trades for the next day (trade dates Monday-Friday). Exchange holidays are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Schedule:
    """A venue's session hours: ``open``/``close`` local ``HH:MM`` in ``timezone`` (a close
    before the open spans midnight), ``trade_days`` the weekdays of its trade dates."""

    venue: str
    timezone: str
    open: str
    close: str
    trade_days: str = "Mon-Fri"


@dataclass(frozen=True, slots=True)
class Product:
    """A futures product: its schedule, and its tick in the adapters' price units (1e-4 of a
    point) for files that carry no definition."""

    root: str
    tick_units: int
    schedule: Schedule


CME_GLOBEX = Schedule("CME Globex", "America/Chicago", "17:00", "16:00", "Mon-Fri")

CME_PRODUCTS = {
    p.root: p
    for p in (
        # equity index
        Product("ES", 2_500, CME_GLOBEX),
        Product("MES", 2_500, CME_GLOBEX),
        Product("NQ", 2_500, CME_GLOBEX),
        Product("MNQ", 2_500, CME_GLOBEX),
        Product("RTY", 1_000, CME_GLOBEX),
        Product("M2K", 1_000, CME_GLOBEX),
        Product("YM", 10_000, CME_GLOBEX),
        Product("MYM", 10_000, CME_GLOBEX),
        # energy and metals
        Product("CL", 100, CME_GLOBEX),
        Product("GC", 1_000, CME_GLOBEX),
    )
}


def cme_product(symbol_or_root: str) -> Product | None:
    """The product of a root (``ES``) or an outright's symbol (``ESH4``: root + month + year)."""
    found = CME_PRODUCTS.get(symbol_or_root)
    if found is None and len(symbol_or_root) > 2:
        found = CME_PRODUCTS.get(symbol_or_root[:-2])
    return found
