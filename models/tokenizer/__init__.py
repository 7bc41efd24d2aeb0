"""Order tokenizer of the Large Market Model (MarS paper, Sec. 2.1 and App. B.2.1). numpy only.

One token per order: ``type (3) x price slot (32) x volume slot (32) x interval slot (16)`` =
49,152 ids, ``id = ((type * 32 + price_slot) * 32 + volume_slot) * 16 + interval_slot``.

- **price**: relative to the touch of the book the order arrives at (``price_codes``). ASK / BID:
  the distance in ticks from the *same* side's best price (0 = join the best, negative = behind
  it); an improvement inside the spread as the fraction of the spread it takes (so it can never
  drift past the other side when the spread narrows); a marketable order as its depth past the
  opposite best. CANCEL: the side (by price against the touch) and, in v3 tokenizers, the
  *level* it names: its rank among that side's resting levels (0 = the best), so a decoded
  cancel always lands on a level of the rollout book (v2: the ticks behind that side's best).
  Decoding uses the rollout book's current touch, so a limit order crosses only if its token is
  marketable (bins never mix marketable and passive codes, nor the two sides of a cancel). Why
  not v1's offsets from the mid or v2's cancels by ticks: docs/decisions/tokenizer-price-codes.md.
- **volume**: shares; separate bins for limit orders and for cancels. v4: the last limit slot
  (``SWEEP_SLOT``) is not a size but "exactly what rests on the other side up to the order's
  price", decoded on the book the order meets, because most aggressive orders take exactly
  that. Not the default (``surveillance train --sweep``); measurements in
  docs/decisions/tokenizer-sweep-slot.md.
- **interval**: nanoseconds since the previous order.

Bins are fitted on training data: a value that carries at least ``heavy_share`` of the mass (a
round lot of 100 shares, a zero offset, a zero interval) gets a bin of its own, the rest is cut at
quantiles. Every bin is a closed integer interval; together they cover all integers. Each bin keeps
a bounded random sample of the training values that fell into it, and decoding draws a concrete
value from that sample (so decoded values follow the empirical distribution inside the bin).

Context features of a token (the book it is paired with): log1p volumes of ``N_LEVELS`` levels per
side (zero-padded when the feed has fewer) and the log1p spread in ticks (clipped), the bucketed
mid move since the open, and the time of day. Training reads LOBSTER orderbook rows and rollouts
read ``book_rows`` of their live books (the same layout), both through ``features_from_rows``,
so identical books give identical features.

Modules: ``slots`` (token ids), ``bins`` (fitted bins), ``prices`` (price codes against the
touch), ``sweep`` (the v4 sweep slot), ``features`` (book and time context features, book rows),
``flow`` (order-flow features) and ``order_tokenizer`` (``OrderTokenizer``); this package
re-exports their public names.
"""

from models.tokenizer.bins import Bins
from models.tokenizer.features import (
    DEPTH_DIM,
    GAP_SCALE,
    LOB_DIM,
    LOB_DIM_GAPS,
    LOB_SCALE,
    MID_MAX_BUCKET,
    N_LEVELS,
    N_MID_BUCKETS,
    SESSION_LENGTH_NS,
    SESSION_OPEN_NS,
    SPREAD_MAX_TICKS,
    SPREAD_SCALE,
    TOD_DIM,
    TokenFeatures,
    book_rows,
    features_from_rows,
    hide_levels,
    mid2_from_rows,
    mid_bucket,
    pad_rows,
    time_of_day,
)
from models.tokenizer.flow import (
    FLOW_DIM,
    FLOW_HALF_LIVES,
    FLOW_PRIOR,
    FLOW_SIGNALS,
    flow_features,
    flow_signals,
    flow_step,
)
from models.tokenizer.order_tokenizer import (
    TOKENIZER_VERSION,
    DecodedOrders,
    OrderTokenizer,
)
from models.tokenizer.prices import (
    INSIDE_STEPS,
    MARKETABLE_BASE,
    cancel_level_codes,
    cancel_level_prices,
    cancel_prices,
    limit_prices,
    price_codes,
    touch,
)
from models.tokenizer.slots import (
    N_INTERVAL,
    N_PRICE,
    N_TYPES,
    N_VOLUME,
    VOCAB_SIZE,
    token_fields,
    token_id,
)
from models.tokenizer.sweep import (
    SWEEP_SLOT,
    available_from_rows,
    marketable_mask,
    sweep_mask,
)

__all__ = [
    "DEPTH_DIM",
    "FLOW_DIM",
    "FLOW_HALF_LIVES",
    "FLOW_PRIOR",
    "FLOW_SIGNALS",
    "GAP_SCALE",
    "INSIDE_STEPS",
    "LOB_DIM",
    "LOB_DIM_GAPS",
    "LOB_SCALE",
    "MARKETABLE_BASE",
    "MID_MAX_BUCKET",
    "N_INTERVAL",
    "N_LEVELS",
    "N_MID_BUCKETS",
    "N_PRICE",
    "N_TYPES",
    "N_VOLUME",
    "SESSION_LENGTH_NS",
    "SESSION_OPEN_NS",
    "SPREAD_MAX_TICKS",
    "SPREAD_SCALE",
    "SWEEP_SLOT",
    "TOD_DIM",
    "TOKENIZER_VERSION",
    "VOCAB_SIZE",
    "Bins",
    "DecodedOrders",
    "OrderTokenizer",
    "TokenFeatures",
    "available_from_rows",
    "book_rows",
    "cancel_level_codes",
    "cancel_level_prices",
    "cancel_prices",
    "features_from_rows",
    "flow_features",
    "flow_signals",
    "flow_step",
    "hide_levels",
    "limit_prices",
    "marketable_mask",
    "mid2_from_rows",
    "mid_bucket",
    "pad_rows",
    "price_codes",
    "sweep_mask",
    "time_of_day",
    "token_fields",
    "token_id",
    "touch",
]
