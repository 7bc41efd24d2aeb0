"""The order model of the Large Market Model: a small causal transformer over order tokens.

Input at position ``t`` (MarS App. B, Eq. 4, plus a time-of-day term):

    x_t = emb(order_t) + Linear(LOB volumes and spread_t) + emb(mid move_t) + Linear(time of day_t)

``emb(order)`` is the sum of per-field embeddings (type, type-specific price slot, type-specific
volume slot, interval slot; 211 rows): a full 49,152-row table would leave most rows untrained
on this data (a whole GOOG day shows 19,141 distinct ids in 142k orders, most of them a handful
of times). The book features paired with order ``t`` are those of the book *after* it (= the
book the next order meets), so every prediction is conditioned on the book it will act on,
including changes made by orders the model did not generate (injected agents); see
``models/generator.py``.

Output: ``FactorizedHead`` writes the joint distribution over the 49,152 ids by the chain rule,
p(type) p(price | type) p(volume | type, price) p(interval | type, price, volume), each factor a
small MLP on the hidden state plus embeddings of the fields already chosen; it is exactly
normalized, so its loss is directly comparable to a flat softmax's. ``FlatHead`` is the plain
49,152-way softmax, kept as the reference option; the factorized head samples two orders of
magnitude faster (docs/decisions/model-head-and-rope.md).

Positions are rotary (RoPE), so the KV cache is a ring buffer: generation can run past
``block_size`` as sliding-window attention (every layer attends to the last ``block_size``
positions; deeper layers still carry some older context) without re-encoding anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.tokenizer import (
    LOB_DIM,
    N_INTERVAL,
    N_MID_BUCKETS,
    N_PRICE,
    N_TYPES,
    N_VOLUME,
    TOD_DIM,
    VOCAB_SIZE,
)


@dataclass
class LMMConfig:
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 96
    block_size: int = 128  # training context, and the sliding window when generating
    dropout: float = 0.1
    head: str = "factorized"  # or "flat"
    rope_base: float = 10_000.0
    lob_dim: int = LOB_DIM
    tod_dim: int = TOD_DIM
    n_mid: int = N_MID_BUCKETS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMMConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ---------------------------------------------------------------------- token fields
def split_ids(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids -> (type, price slot, volume slot, interval slot); see models/tokenizer/slots.py."""
    interval = ids % N_INTERVAL
    rest = ids // N_INTERVAL
    volume = rest % N_VOLUME
    rest = rest // N_VOLUME
    return rest // N_PRICE, rest % N_PRICE, volume, interval


def join_ids(t: torch.Tensor, p: torch.Tensor, v: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    return ((t * N_PRICE + p) * N_VOLUME + v) * N_INTERVAL + i


class OrderEmbedding(nn.Module):
    """emb(order) as a sum of field embeddings; price and volume tables are per type."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.kind = nn.Embedding(N_TYPES, d)
        self.price = nn.Embedding(N_TYPES * N_PRICE, d)
        self.volume = nn.Embedding(N_TYPES * N_VOLUME, d)
        self.interval = nn.Embedding(N_INTERVAL, d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t, p, v, i = split_ids(ids)
        return (
            self.kind.forward(t)
            + self.price.forward(t * N_PRICE + p)
            + self.volume.forward(t * N_VOLUME + v)
            + self.interval.forward(i)
        )


# ---------------------------------------------------------------------- rotary positions
def rope_tables(positions: torch.Tensor, head_dim: int, base: float):
    """cos/sin of shape (T, head_dim/2); angles computed in float64 so far positions stay exact."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (..., hs) with cos/sin broadcastable to (..., hs/2): rotate (first half, second half)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


# ---------------------------------------------------------------------- transformer
class KVCache:
    """Per-layer ring buffers of rotated keys and values: (B, nh, block_size, hs)."""

    def __init__(self, cfg: LMMConfig, batch: int, device, dtype=torch.float32) -> None:
        hs = cfg.d_model // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_head, cfg.block_size, hs)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0  # absolute position of the next token
        self.size = cfg.block_size
        # Per-row absolute positions (B,) when rows are at different positions (rollouts of
        # several forks in one batch, ``OrderModel.step`` then reads and advances these);
        # None: every row is at ``pos``.
        self.positions: torch.Tensor | None = None
        # where this step writes and what it masks (``OrderModel.step``, for ``positions``)
        self.step_plan: tuple[int | torch.Tensor, torch.Tensor | None] = (0, None)

    def expand(self, batch: int) -> KVCache:
        """A cache for ``batch`` sequences that all share this (batch 1) cache's prefix."""
        out = KVCache.__new__(KVCache)
        out.k = self.k.expand(-1, batch, -1, -1, -1).contiguous()
        out.v = self.v.expand(-1, batch, -1, -1, -1).contiguous()
        out.pos, out.size = self.pos, self.size
        out.positions = None if self.positions is None else self.positions.expand(batch).clone()
        return out


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: LMMConfig) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.scale = 1.0 / math.sqrt(cfg.d_model // cfg.n_head)

    def _heads(self, x: torch.Tensor, cos, sin):
        """Rotated queries and keys and the values, each (B, nh, T, hs)."""
        B, T, C = x.shape
        # ``forward`` directly, as in ``Block.step``: this runs at every generation step
        qkv = self.qkv.forward(x).view(B, T, 3, self.n_head, C // self.n_head)
        qk = apply_rope(qkv[:, :, :2], cos[:, None, None], sin[:, None, None])  # (B, T, 2, nh, hs)
        q, k = qk.transpose(1, 3).unbind(2)  # (B, nh, T, hs) each
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def forward(self, x: torch.Tensor, cos, sin, kv_out=None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x, cos, sin)
        if kv_out is not None:
            kv_out.append((k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, nh, T, hs) -> (B, T, C)

    def step(self, x: torch.Tensor, cos, sin, cache: KVCache, layer: int) -> torch.Tensor:
        """One new position per sequence: x (B, 1, C); keys of all cached positions are past."""
        if cache.positions is not None:
            return self._step_rows(x, cos, sin, cache, layer)
        B, _, C = x.shape
        q, k, v = self._heads(x, cos, sin)
        slot = cache.pos % cache.size
        cache.k[layer, :, :, slot] = k[:, :, 0]
        cache.v[layer, :, :, slot] = v[:, :, 0]
        n = min(cache.pos + 1, cache.size)
        # a plain softmax(q k^T) v: for one query the fused CPU kernel costs ~10x more
        att = q @ cache.k[layer, :, :, :n].transpose(-2, -1) * self.scale  # (B, nh, 1, n)
        y = att.softmax(dim=-1) @ cache.v[layer, :, :, :n]  # (B, nh, 1, hs)
        return self.proj.forward(y.transpose(1, 2).reshape(B, 1, C))

    def _step_rows(self, x: torch.Tensor, cos, sin, cache: KVCache, layer: int) -> torch.Tensor:
        """``step`` with each row at its own position (``cache.positions``; ``cos``/``sin``
        (B, hs/2)). Every row attends over all ``size`` slots, the ones it has not filled yet
        masked: a fixed shape, so a row's result never depends on the other rows' positions."""
        B, _, C = x.shape
        q, k, v = self._heads(x, cos[:, None], sin[:, None])
        write, empty = cache.step_plan
        if isinstance(write, int):  # every row writes the same slot: a plain slice
            cache.k[layer, :B, :, write] = k[:, :, 0]
            cache.v[layer, :B, :, write] = v[:, :, 0]
        else:  # (B * nh,) flat (row, head, slot) indices into the layer's (B*nh*size, hs) view
            hs = C // self.n_head
            cache.k[layer].view(-1, hs).index_copy_(0, write, k[:, :, 0].reshape(-1, hs))
            cache.v[layer].view(-1, hs).index_copy_(0, write, v[:, :, 0].reshape(-1, hs))
        att = q @ cache.k[layer].transpose(-2, -1) * self.scale  # (B, nh, 1, size)
        if empty is not None:  # some row has not filled its window yet
            att = att.masked_fill(empty, float("-inf"))
        y = att.softmax(dim=-1) @ cache.v[layer]  # (B, nh, 1, hs)
        return self.proj.forward(y.transpose(1, 2).reshape(B, 1, C))


def _step_plan(cache: KVCache, n_head: int) -> tuple[int | torch.Tensor, torch.Tensor | None]:
    """Per step, for rows at their own positions: the slot every row writes (an int when they
    share it) or each (row, head)'s flat index in a layer's (B * nh * size, hs) view, and the
    (B, 1, 1, size) mask of the slots a row has not filled yet (None when all rows are full)."""
    pos = cache.positions
    assert pos is not None
    size = cache.size
    lo, hi = int(pos.min()), int(pos.max())
    slot = pos % size
    if lo == hi or (lo >= size and int(slot.min()) == int(slot.max())):
        write: int | torch.Tensor = lo % size
    else:
        rows = torch.arange(len(pos), device=pos.device)[:, None] * n_head
        heads = torch.arange(n_head, device=pos.device)[None]
        write = ((rows + heads) * size + slot[:, None]).reshape(-1)
    empty = None
    if lo < size - 1:
        empty = (torch.arange(size, device=pos.device)[None] > pos[:, None])[:, None, None]
    return write, empty


class MLP(nn.Module):
    def __init__(self, cfg: LMMConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: LMMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, kv_out=None):
        x = x + self.drop(self.attn(self.ln1(x), cos, sin, kv_out))
        return x + self.mlp(self.ln2(x))

    def step(self, x, cos, sin, cache: KVCache, layer: int):
        # Generation calls submodules' ``forward`` directly: the same operations without the
        # module-call machinery (hooks, which nothing here registers), 1 to 2.5 us a call on one
        # CPU thread, about 40 calls per generated batch. No dropout: the model is in eval mode.
        x = x + self.attn.step(self.ln1.forward(x), cos, sin, cache, layer)
        mlp = self.mlp
        h = F.gelu(mlp.fc.forward(self.ln2.forward(x)), approximate="tanh")
        return x + mlp.proj.forward(h)


# ---------------------------------------------------------------------- output heads
# A sampling setting (temperature, top-p): one value for every field, or one per field (type,
# price, volume, interval).
PerField = float | tuple[float, float, float, float]


def _sample(
    logits: torch.Tensor,
    temperature: float,
    generator=None,
    u: torch.Tensor | None = None,
    top_p: float = 1.0,
) -> torch.Tensor:
    """One index per row of (B, K) logits by inverse CDF; temperature 0 is the argmax.

    ``top_p`` < 1 samples from the nucleus: the most probable classes whose mass first reaches
    ``top_p``, renormalized (the tail of unlikely classes is never drawn). ``u`` (B,) are the
    uniforms to use (callers that keep one random stream per sequence pass them); otherwise they
    are drawn from ``generator``. Inverse CDF with one uniform per row is ~5x cheaper than
    ``torch.multinomial`` for small K on a CPU.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the more probable classes
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    cdf = probs.cumsum(dim=-1)
    if u is None:
        u = torch.rand(logits.shape[:-1], generator=generator, device=logits.device)
    u = u.to(cdf.dtype).unsqueeze(-1)
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True).squeeze(-1)
    return idx.clamp_(max=logits.shape[-1] - 1)


class FlatHead(nn.Module):
    """One 49,152-way softmax."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.out = nn.Linear(d, VOCAB_SIZE)

    def log_prob(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(self.out(h).flatten(0, -2), ids.flatten(), reduction="none").view(
            ids.shape
        )

    def full_log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.out(h), dim=-1)

    def sample(
        self,
        h: torch.Tensor,
        temperature: PerField = 1.0,
        generator=None,
        uniforms=None,
        top_p: PerField = 1.0,
    ) -> torch.Tensor:
        u = None if uniforms is None else uniforms[:, 0]
        temps, tops = field_temperatures(temperature), field_top_p(top_p)
        if len(set(temps)) != 1 or len(set(tops)) != 1:
            raise ValueError(
                "the flat head samples whole tokens: one temperature and one top_p only"
            )
        return _sample(self.out(h), temps[0], generator, u, tops[0])


class _Factor(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear: one conditional factor's logits."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)
        self.out = nn.Linear(d, k)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        # submodules' ``forward`` directly, as in ``Block.step``: this runs at every generation step
        return self.out.forward(F.gelu(self.fc.forward(self.ln.forward(g)), approximate="tanh"))


class FactorizedHead(nn.Module):
    """Chain-rule head: p(t) p(p | t) p(v | t, p) p(i | t, p, v), exactly normalized over ids."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.kind = nn.Linear(d, N_TYPES)
        self.type_emb = nn.Embedding(N_TYPES, d)
        self.price_emb = nn.Embedding(N_TYPES * N_PRICE, d)
        self.volume_emb = nn.Embedding(N_TYPES * N_VOLUME, d)
        self.price = _Factor(d, N_PRICE)
        self.volume = _Factor(d, N_VOLUME)
        self.interval = _Factor(d, N_INTERVAL)

    def _contexts(self, h, t, p, v):
        g1 = h + self.type_emb(t)
        g2 = g1 + self.price_emb(t * N_PRICE + p)
        g3 = g2 + self.volume_emb(t * N_VOLUME + v)
        return g1, g2, g3

    def log_prob(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids | h) for h (..., d) and ids (...)."""
        t, p, v, i = split_ids(ids)
        g1, g2, g3 = self._contexts(h, t, p, v)

        def lp(logits, x):
            return F.log_softmax(logits, dim=-1).gather(-1, x.unsqueeze(-1)).squeeze(-1)

        return (
            lp(self.kind(h), t)
            + lp(self.price(g1), p)
            + lp(self.volume(g2), v)
            + lp(self.interval(g3), i)
        )

    def full_log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, 49,152) joint log-probabilities (for tests and analysis; slow)."""
        ids = torch.arange(VOCAB_SIZE, device=h.device)
        return torch.stack([self.log_prob(row.expand(VOCAB_SIZE, -1), ids) for row in h])

    def sample(
        self,
        h: torch.Tensor,
        temperature: PerField = 1.0,
        generator=None,
        uniforms=None,
        top_p: PerField = 1.0,
    ) -> torch.Tensor:
        """Ancestral sampling, one field at a time (temperature 0: greedy per field).

        ``temperature`` and ``top_p`` (nucleus mass, 1: the full distribution) are one value
        for all fields or four (type, price, volume, interval). ``uniforms`` (B, 4), if given,
        drive the four draws instead of ``generator``.
        """

        if uniforms is not None:  # to the probabilities' dtype once, not once per field
            uniforms = uniforms.to(h.dtype)

        def u(k: int):
            return None if uniforms is None else uniforms[:, k]

        # submodules' ``forward`` directly, as in ``Block.step``: one call per generation step
        temps, tops = field_temperatures(temperature), field_top_p(top_p)
        t = _sample(self.kind.forward(h), temps[0], generator, u(0), tops[0])
        g1 = h + self.type_emb.forward(t)
        p = _sample(self.price.forward(g1), temps[1], generator, u(1), tops[1])
        g2 = g1 + self.price_emb.forward(t * N_PRICE + p)
        v = _sample(self.volume.forward(g2), temps[2], generator, u(2), tops[2])
        g3 = g2 + self.volume_emb.forward(t * N_VOLUME + v)
        i = _sample(self.interval.forward(g3), temps[3], generator, u(3), tops[3])
        return join_ids(t, p, v, i)


def _per_field(value: PerField, what: str) -> tuple[float, float, float, float]:
    if isinstance(value, int | float):
        return (float(value),) * 4
    values = tuple(float(t) for t in value)
    if len(values) != 4:
        raise ValueError(f"need one {what} or four (one per field), got {value!r}")
    return values  # type: ignore[return-value]


def field_temperatures(temperature) -> tuple[float, float, float, float]:
    """Per-field temperatures (type, price, volume, interval) from one value or four; each >= 0
    (0: greedy)."""
    temps = _per_field(temperature, "temperature")
    if min(temps) < 0:
        raise ValueError(f"a sampling temperature must be >= 0, got {temperature!r}")
    return temps


def field_top_p(top_p) -> tuple[float, float, float, float]:
    """Per-field nucleus masses (type, price, volume, interval) from one value or four."""
    tops = _per_field(top_p, "top_p")
    if not all(0.0 < t <= 1.0 for t in tops):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    return tops


# ---------------------------------------------------------------------- the model
class OrderModel(nn.Module):
    def __init__(self, cfg: LMMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.order_emb = OrderEmbedding(d)
        self.lob_proj = nn.Linear(cfg.lob_dim, d)
        self.mid_emb = nn.Embedding(cfg.n_mid, d)
        self.tod_proj = nn.Linear(cfg.tod_dim, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        if cfg.head == "factorized":
            self.head: FactorizedHead | FlatHead = FactorizedHead(d)
        elif cfg.head == "flat":
            self.head = FlatHead(d)
        else:
            raise ValueError(f"unknown head {cfg.head!r}")
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None  # ``_rope_at``'s table
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") and "blocks" in name:
                # residual projections scaled down with depth (GPT-2)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, ids, lob, mid, tod) -> torch.Tensor:
        """ids (B, T) int64, lob (B, T, lob_dim), mid (B, T) int64, tod (B, T, tod_dim)."""
        # submodules' ``forward`` directly, as in ``Block.step``: this runs at every generation step
        return (
            self.order_emb.forward(ids)
            + self.lob_proj.forward(lob)
            + self.mid_emb.forward(mid)
            + self.tod_proj.forward(tod)
        )

    def hidden(self, ids, lob, mid, tod, kv_out=None) -> torch.Tensor:
        """Final hidden states (B, T, d) for every position (causal)."""
        T = ids.shape[1]
        if self.cfg.block_size < T:
            raise ValueError(f"sequence of {T} exceeds block_size {self.cfg.block_size}")
        cos, sin = rope_tables(
            torch.arange(T, device=ids.device),
            self.cfg.d_model // self.cfg.n_head,
            self.cfg.rope_base,
        )
        x = self.drop(self.embed(ids, lob, mid, tod))
        for block in self.blocks:
            x = block(x, cos, sin, kv_out)
        return self.ln_f(x)

    def forward(self, ids, lob, mid, tod, targets: torch.Tensor | None = None):
        """With ``targets`` (B, T): mean negative log-likelihood in nats per token.

        Without: log-probabilities (B, 49,152) of the next token after the last position only.
        """
        h = self.hidden(ids, lob, mid, tod)
        if targets is not None:
            return -self.head.log_prob(h, targets).mean()
        return self.head.full_log_probs(h[:, -1])

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def prefill(self, ids, lob, mid, tod) -> tuple[KVCache, torch.Tensor]:
        """Encode a prompt (B, T <= block_size) into a fresh cache; returns (cache, h_last)."""
        kv: list = []
        h = self.hidden(ids, lob, mid, tod, kv_out=kv)
        B, T = ids.shape
        cache = KVCache(self.cfg, B, ids.device, h.dtype)
        for layer, (k, v) in enumerate(kv):
            cache.k[layer, :, :, :T] = k
            cache.v[layer, :, :, :T] = v
        cache.pos = T
        return cache, h[:, -1]

    def _rope_at(self, pos: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``rope_tables`` of one position, bit for bit, from a table of every position so far
        (grown by doubling): a generation step slices two rows instead of recomputing the
        angles in ~10 small tensor ops (docs/decisions/model-head-and-rope.md)."""
        table = self._rope
        if table is None or pos >= len(table[0]) or table[0].device != torch.device(device):
            n = max(2 * pos + 1, 4096)
            hs = self.cfg.d_model // self.cfg.n_head
            cos, sin = rope_tables(torch.arange(n), hs, self.cfg.rope_base)
            table = (cos.to(device), sin.to(device))
            self._rope = table
        return table[0][pos : pos + 1], table[1][pos : pos + 1]

    @torch.no_grad()
    def step(self, cache: KVCache, ids, lob, mid, tod) -> torch.Tensor:
        """Append one token per sequence (ids (B,), lob (B, lob_dim), ...); returns h (B, d).
        With ``cache.positions`` each row is at its own position (and advances by one)."""
        if cache.positions is None:
            cos, sin = self._rope_at(cache.pos, ids.device)
        else:
            # the same table rows as ``_rope_at`` per position, so a row's angles are bit for
            # bit those it would get alone
            top = int(cache.positions.max())
            self._rope_at(top, ids.device)
            assert self._rope is not None
            cos, sin = self._rope[0][cache.positions], self._rope[1][cache.positions]
            cache.step_plan = _step_plan(cache, self.cfg.n_head)
        x = self.embed(ids[:, None], lob[:, None], mid[:, None], tod[:, None])  # (B, 1, d)
        for layer, block in enumerate(self.blocks):
            x = cast(Block, block).step(x, cos, sin, cache, layer)
        cache.pos += 1
        if cache.positions is not None:
            cache.positions += 1
        return self.ln_f.forward(x)[:, 0]

    @torch.no_grad()
    def sample(
        self,
        h: torch.Tensor,
        temperature: PerField = 1.0,
        generator=None,
        uniforms=None,
        top_p: PerField = 1.0,
    ) -> torch.Tensor:
        """Next token ids (B,) from final hidden states (B, d); see ``FactorizedHead.sample``."""
        return self.head.sample(h, temperature, generator, uniforms, top_p)
