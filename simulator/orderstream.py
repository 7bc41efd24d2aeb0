"""The MarS order stream: what the order model reads and writes.

One entry per order, of three types (paper, App. B): ``ASK`` and ``BID`` limit orders (passive or
aggressive; an aggressive order is marketable on arrival and trades in the clearing house) and
``CANCEL`` (removes quantity from a resting order at a price). Columnar, integer units.

``from_lobster`` (in this module) converts a venue feed into this stream; see its docstring for
how aggressive orders are reconstructed from executions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class OrderType(IntEnum):
    ASK = 0
    BID = 1
    CANCEL = 2


@dataclass(slots=True)
class OrderStream:
    """Columnar MarS orders (all arrays have one entry per order)."""

    ts_ns: np.ndarray  # int64 arrival time
    type: np.ndarray  # int8 OrderType
    side: np.ndarray  # int8 Side of the order (for CANCEL: side of the cancelled order)
    price: np.ndarray  # int64 limit price (CANCEL: price of the cancelled order)
    qty: np.ndarray  # int64 shares (CANCEL: shares removed)
    order_id: np.ndarray  # int64 venue id (limit: the id that rests; CANCEL: the id cancelled; 0 if none)
    aggressive: np.ndarray  # bool: marketable on arrival
    source_row: np.ndarray  # int64 index of the last feed message this order accounts for

    def __len__(self) -> int:
        return len(self.ts_ns)
