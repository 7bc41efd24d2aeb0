"""The v4 sweep volume slot: marketable orders that take exactly what rests up to their price."""

from __future__ import annotations

import numpy as np

from models.tokenizer.slots import N_VOLUME
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.orderstream import OrderType

# v4: the last limit volume slot says "takes exactly what rests up to its price" (a sweep)
SWEEP_SLOT = N_VOLUME - 1
_SWEEP_LO = 1 << 40  # the sweep slot's lower bound: above any real quantity


def available_from_rows(type_, price, rows) -> np.ndarray:
    """Shares resting on the opposite side up to each BID / ASK's price, in LOBSTER ``rows``
    (the book the order meets): what a marketable order at that price can take."""
    type_ = np.asarray(type_, np.int64)
    p = np.asarray(price, np.int64)[..., None]
    rows = np.asarray(rows, np.int64)
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    buy = (type_ == OrderType.BID)[..., None]
    take = np.where(
        buy,
        (ask_px <= p) & (ask_px != EMPTY_ASK_PRICE),
        (bid_px >= p) & (bid_px != EMPTY_BID_PRICE),
    )
    return np.where(take, np.where(buy, rows[..., 1::4], rows[..., 3::4]), 0).sum(-1)


def marketable_mask(type_, price, best_ask, best_bid) -> np.ndarray:
    """BID / ASK orders whose price reaches the opposite best (cancels never)."""
    type_ = np.asarray(type_, np.int64)
    price = np.asarray(price, np.int64)
    return ((type_ == OrderType.BID) & (price >= np.asarray(best_ask))) | (
        (type_ == OrderType.ASK) & (price <= np.asarray(best_bid))
    )


def sweep_mask(type_, price, qty, best_ask, best_bid, rows) -> np.ndarray:
    """Marketable BID / ASK orders whose size is exactly what rests up to their price."""
    available = available_from_rows(type_, price, rows)
    return (
        marketable_mask(type_, price, best_ask, best_bid)
        & (np.asarray(qty, np.int64) == available)
        & (available > 0)
    )
