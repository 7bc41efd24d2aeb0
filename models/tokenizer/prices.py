"""Price codes: an order's price relative to the touch it meets, and back."""

from __future__ import annotations

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.orderstream import OrderType

# Limit price codes (see ``price_codes``): <= 0 join / behind, [1, INSIDE_STEPS] inside the spread
# as a fraction of it, >= MARKETABLE_BASE marketable (depth past the opposite best).
INSIDE_STEPS = 64
MARKETABLE_BASE = 1000


def touch(best_ask, best_bid, price=None, tick: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Best ask and bid with empty sides filled in: one tick beyond the other side, or ``price``
    (the order's own price, so it reads as a join) when both are empty."""
    ask = np.asarray(best_ask, np.int64)
    bid = np.asarray(best_bid, np.int64)
    has_a, has_b = ask != EMPTY_ASK_PRICE, bid != EMPTY_BID_PRICE
    own = np.zeros_like(ask) if price is None else np.asarray(price, np.int64)
    ask_f = np.where(has_a, ask, np.where(has_b, bid + tick, own))
    bid_f = np.where(has_b, bid, np.where(has_a, ask - tick, own))
    return ask_f, bid_f


def price_codes(type_, price, best_ask, best_bid, tick: int = 100) -> np.ndarray:
    """Integer price codes relative to the touch the order meets.

    ASK / BID, with ``d`` the distance in ticks from the same side's best (positive = more
    aggressive) and ``s`` the spread in ticks:

    - ``d <= 0``: ``d`` (0 = join the best, negative = behind it);
    - ``0 < d < s`` (inside the spread): ``1 + floor(d * INSIDE_STEPS / s)``, in
      ``[1, INSIDE_STEPS]``, the fraction of the spread it improves by;
    - ``d >= s`` (marketable): ``MARKETABLE_BASE + d - s``, the depth past the opposite best.

    CANCEL: the side by price (as ``simulator.rollout.cancel_side``) and ``k``, ticks behind that
    side's best: ``k`` on the ask side, ``-1 - k`` on the bid side.
    """
    type_ = np.asarray(type_, np.int64)
    price = np.asarray(price, np.int64)
    ask, bid = touch(best_ask, best_bid, price, tick)
    s = np.maximum((ask - bid) // tick, 1)
    d = np.where(type_ == OrderType.BID, price - bid, ask - price) // tick
    inside = 1 + (np.maximum(d, 0) * INSIDE_STEPS) // s
    limit = np.where(d <= 0, d, np.where(d < s, inside, MARKETABLE_BASE + d - s))
    ask_side = (price >= ask) | ((price > bid) & (ask - price <= price - bid))
    cancel = np.where(ask_side, (price - ask) // tick, -1 - (bid - price) // tick)
    cancel = np.where(ask_side, np.maximum(cancel, 0), np.minimum(cancel, -1))
    return np.where(type_ == OrderType.CANCEL, cancel, limit)


def limit_prices(
    type_, code, best_ask, best_bid, code_lo=None, code_hi=None, tick: int = 100
) -> np.ndarray:
    """Inverse of ``price_codes`` for ASK / BID at the given touch.

    An inside-the-spread code is mapped to a tick inside the current spread; when ``code_lo`` /
    ``code_hi`` (the code's bin) are given, the tick is kept inside the bin whenever the spread
    has a tick there, so a token re-encodes to itself. A spread of one tick has no inside: such
    codes join. So an order is marketable only if its code is.
    """
    type_ = np.asarray(type_, np.int64)
    code = np.asarray(code, np.int64)
    ask, bid = touch(best_ask, best_bid, None, tick)
    s = np.maximum((ask - bid) // tick, 1)
    n = INSIDE_STEPS
    c = np.clip(code, 1, n)
    # ticks whose code is c: ceil((c - 1) s / n) .. ceil(c s / n) - 1
    c_lo, c_hi = -((-(c - 1) * s) // n), -((-c * s) // n) - 1
    d_in = np.where(c_lo <= c_hi, (c_lo + c_hi) // 2, (2 * c - 1) * s // (2 * n))
    if code_lo is not None and code_hi is not None:
        lo_c = np.clip(np.asarray(code_lo, np.int64), 1, n)
        hi_c = np.clip(np.asarray(code_hi, np.int64), 1, n)
        f_lo = np.maximum(-((-(lo_c - 1) * s) // n), 1)
        f_hi = np.minimum(-((-hi_c * s) // n) - 1, s - 1)
        d_in = np.where(f_lo <= f_hi, np.clip(d_in, f_lo, f_hi), d_in)
    d_in = np.where(s > 1, np.clip(d_in, 1, s - 1), 0)
    d = np.where(
        code <= 0, code, np.where(code < MARKETABLE_BASE, d_in, s + code - MARKETABLE_BASE)
    )
    price = np.where(type_ == OrderType.BID, bid + d * tick, ask - d * tick)
    return np.maximum(price, tick)


def cancel_prices(code, best_ask, best_bid, tick: int = 100) -> np.ndarray:
    """Inverse of ``price_codes`` for CANCEL: ``code`` ticks behind the ask, or ``-1 - code``
    behind the bid."""
    code = np.asarray(code, np.int64)
    ask, bid = touch(best_ask, best_bid, None, tick)
    price = np.where(code >= 0, ask + code * tick, bid + (code + 1) * tick)
    return np.maximum(price, tick)


def cancel_level_codes(price, rows, tick: int = 100) -> np.ndarray:
    """CANCEL price codes by level (v3): the side as in ``price_codes``, ``k`` the rank of the
    price among that side's levels in ``rows`` (LOBSTER layout, the book the cancel meets;
    0 = at or better than the best), ``k`` on the ask side and ``-1 - k`` on the bid side. A
    real cancel always names a visible level, so ``k`` is that level's index."""
    price = np.asarray(price, np.int64)
    rows = np.asarray(rows, np.int64)
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    ask, bid = touch(rows[..., 0], rows[..., 2], price, tick)
    ask_side = (price >= ask) | ((price > bid) & (ask - price <= price - bid))
    k_ask = (ask_px < price[..., None]).sum(-1)  # empty ask levels are +inf: never below
    k_bid = (bid_px > price[..., None]).sum(-1)  # empty bid levels are -inf: never above
    return np.where(ask_side, k_ask, -1 - k_bid).astype(np.int64)


def cancel_level_prices(code, rows, tick: int = 100) -> np.ndarray:
    """Inverse of ``cancel_level_codes`` on the book ``rows``: the price of level ``k`` of the
    side; a rank past the side's deepest level gives the deepest level; an empty side, the
    price one tick beyond the other side's best (as ``touch``)."""
    code = np.asarray(code, np.int64)
    rows = np.asarray(rows, np.int64)
    levels = rows.shape[-1] // 4
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    n_ask = (ask_px != EMPTY_ASK_PRICE).sum(-1)
    n_bid = (bid_px != EMPTY_BID_PRICE).sum(-1)
    on_ask = code >= 0
    k = np.where(on_ask, code, -1 - code)
    n = np.where(on_ask, n_ask, n_bid)
    k = np.clip(np.minimum(k, n - 1), 0, levels - 1)
    px = np.where(
        on_ask,
        np.take_along_axis(ask_px, k[..., None], -1)[..., 0],
        np.take_along_axis(bid_px, k[..., None], -1)[..., 0],
    )
    ask, bid = touch(rows[..., 0], rows[..., 2], None, tick)
    fallback = np.where(on_ask, ask, bid)
    return np.maximum(np.where(n > 0, px, fallback), tick)
