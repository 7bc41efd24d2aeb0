"""The order model: shapes, causality, KV-cache generation, sampling, head normalization."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.model import (  # noqa: E402
    FactorizedHead,
    FlatHead,
    LMMConfig,
    OrderModel,
    join_ids,
    split_ids,
)
from models.tokenizer import LOB_DIM, N_MID_BUCKETS, TOD_DIM, VOCAB_SIZE  # noqa: E402

CFG = LMMConfig(n_layer=2, n_head=2, d_model=32, block_size=16, dropout=0.0)


def _model(cfg: LMMConfig = CFG, seed: int = 0) -> OrderModel:
    torch.manual_seed(seed)
    model = OrderModel(cfg).eval()
    with torch.no_grad():  # random, non-trivial weights everywhere (embeddings start near zero)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _inputs(B: int, T: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, VOCAB_SIZE, (B, T), generator=g),
        torch.rand(B, T, LOB_DIM, generator=g),
        torch.randint(0, N_MID_BUCKETS, (B, T), generator=g),
        torch.rand(B, T, TOD_DIM, generator=g),
    )


def test_split_and_join_ids_are_inverse():
    ids = torch.arange(VOCAB_SIZE)
    assert torch.equal(join_ids(*split_ids(ids)), ids)


def test_forward_shapes_and_loss():
    model = _model()
    x = _inputs(3, 10)
    h = model.hidden(*x)
    assert h.shape == (3, 10, CFG.d_model)
    logp = model(*x)
    assert logp.shape == (3, VOCAB_SIZE)
    loss = model(*x, targets=x[0])
    assert loss.dim() == 0 and loss.item() > 0


def test_sequence_longer_than_block_is_rejected():
    with pytest.raises(ValueError, match="block_size"):
        _model().hidden(*_inputs(1, CFG.block_size + 1))


def test_future_tokens_do_not_change_past_outputs():
    model = _model()
    a = _inputs(2, 12, seed=1)
    b = [t.clone() for t in a]
    other = _inputs(2, 12, seed=2)
    for t, o in zip(b, other, strict=True):
        t[:, 7:] = o[:, 7:]
    ha, hb = model.hidden(*a), model.hidden(*b)
    torch.testing.assert_close(ha[:, :7], hb[:, :7])
    assert not torch.allclose(ha[:, 7:], hb[:, 7:])


def test_kv_cache_generation_equals_full_forward():
    model = _model()
    x = _inputs(2, CFG.block_size)
    full = model.hidden(*x)
    cache, h = model.prefill(*(t[:, :5] for t in x))
    torch.testing.assert_close(h, full[:, 4], atol=1e-5, rtol=1e-5)
    for t in range(5, CFG.block_size):
        h = model.step(cache, *(z[:, t] for z in x))
        torch.testing.assert_close(h, full[:, t], atol=1e-5, rtol=1e-5)


def test_cache_slides_past_block_size_like_a_window():
    """Past block_size, each layer attends to exactly the last block_size positions (RoPE is
    relative, so the window's absolute offset does not matter). With one layer this equals
    re-encoding the window; deeper layers also carry older context, as sliding-window attention
    does."""
    model = _model(LMMConfig(**{**CFG.to_dict(), "n_layer": 1}))
    T = CFG.block_size
    x = _inputs(1, T + 5)
    cache, _ = model.prefill(*(t[:, :1] for t in x))
    for t in range(1, T + 5):
        h = model.step(cache, *(z[:, t] for z in x))
    window = model.hidden(*(z[:, 5 : T + 5] for z in x))[:, -1]
    torch.testing.assert_close(h, window, atol=1e-4, rtol=1e-4)


def test_a_steps_rotary_angles_are_those_of_its_position_bit_for_bit():
    from models.model import rope_tables

    model = _model()
    hs = CFG.d_model // CFG.n_head
    # first use, inside the table, its last row, and past it (the table grows)
    for pos in (0, 7, 4095, 4096, 10_000, 3):
        cos, sin = model._rope_at(pos, "cpu")
        want_cos, want_sin = rope_tables(torch.tensor([pos]), hs, CFG.rope_base)
        assert torch.equal(cos, want_cos) and torch.equal(sin, want_sin), pos
    assert len(model._rope[0]) > 10_000
    assert "_rope" not in str(list(model.state_dict()))  # not saved with the weights


def test_expanded_cache_matches_batched_prefill():
    model = _model()
    x = _inputs(1, 6)
    cache, _ = model.prefill(*x)
    wide = cache.expand(3)
    nxt = _inputs(3, 1, seed=5)
    h = model.step(wide, *(t[:, 0] for t in nxt))
    for r in range(3):
        joined = [torch.cat([a, b[r : r + 1]], dim=1) for a, b in zip(x, nxt, strict=True)]
        torch.testing.assert_close(h[r], model.hidden(*joined)[0, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head", ["factorized", "flat"])
def test_temperature_zero_is_deterministic_argmax(head):
    model = _model(LMMConfig(**{**CFG.to_dict(), "head": head}))
    h = model.hidden(*_inputs(4, 3))[:, -1]
    a = model.sample(h, 0.0, torch.Generator().manual_seed(1))
    b = model.sample(h, 0.0, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    if head == "flat":
        assert torch.equal(a, model.head.full_log_probs(h).argmax(-1))
    else:  # greedy field by field: each field is the argmax of its conditional
        t = split_ids(a)[0]
        assert torch.equal(t, model.head.kind(h).argmax(-1))


def test_factorized_greedy_fields_are_conditional_argmaxes():
    model = _model()
    head: FactorizedHead = model.head  # type: ignore[assignment]
    h = model.hidden(*_inputs(3, 2))[:, -1]
    ids = model.sample(h, 0.0)
    t, p, v, i = split_ids(ids)
    g1 = h + head.type_emb(t)
    assert torch.equal(p, head.price(g1).argmax(-1))
    g2 = g1 + head.price_emb(t * 32 + p)
    assert torch.equal(v, head.volume(g2).argmax(-1))
    g3 = g2 + head.volume_emb(t * 32 + v)
    assert torch.equal(i, head.interval(g3).argmax(-1))


def test_per_field_temperatures():
    model = _model()
    h = model.hidden(*_inputs(16, 3))[:, -1]
    u = torch.rand(16, 4, generator=torch.Generator().manual_seed(3))
    same = model.sample(h, (0.7, 0.7, 0.7, 0.7), uniforms=u)
    assert torch.equal(same, model.sample(h, 0.7, uniforms=u))
    # a greedy price field under a sampled type: the price is its conditional argmax
    ids = model.sample(h, (1.0, 0.0, 1.0, 1.0), uniforms=u)
    head: FactorizedHead = model.head  # type: ignore[assignment]
    t, p, _, _ = split_ids(ids)
    assert torch.equal(t, split_ids(model.sample(h, 1.0, uniforms=u))[0])
    assert torch.equal(p, head.price(h + head.type_emb(t)).argmax(-1))
    with pytest.raises(ValueError, match="four"):
        model.sample(h, (1.0, 0.5))
    flat = _model(LMMConfig(**{**CFG.to_dict(), "head": "flat"}))
    with pytest.raises(ValueError, match="one temperature"):
        flat.sample(h, (1.0, 0.5, 1.0, 1.0))


def test_top_p_draws_only_from_the_nucleus():
    model = _model()
    head: FactorizedHead = model.head  # type: ignore[assignment]
    h = model.hidden(*_inputs(64, 3))[:, -1]
    u = torch.rand(64, 4, generator=torch.Generator().manual_seed(4))
    # top_p 1 is the plain distribution; a vanishing nucleus is the greedy choice per field
    assert torch.equal(
        model.sample(h, 1.0, uniforms=u, top_p=1.0), model.sample(h, 1.0, uniforms=u)
    )
    assert torch.equal(model.sample(h, 1.0, uniforms=u, top_p=1e-6), model.sample(h, 0.0))
    # a price nucleus of 0.6 under a sampled type: every price is among the most probable
    # classes whose mass before it is under 0.6, and some draws differ from the full sampler
    ids = model.sample(h, 1.0, uniforms=u, top_p=(1.0, 0.6, 1.0, 1.0))
    t, p, _, _ = split_ids(ids)
    assert torch.equal(t, split_ids(model.sample(h, 1.0, uniforms=u))[0])
    probs = torch.softmax(head.price(h + head.type_emb(t)), dim=-1)
    before = (probs * (probs > probs.gather(-1, p[:, None]))).sum(-1)
    assert bool((before < 0.6).all())
    assert not torch.equal(p, split_ids(model.sample(h, 1.0, uniforms=u))[1])
    with pytest.raises(ValueError, match="top_p"):
        model.sample(h, 1.0, top_p=0.0)
    flat = _model(LMMConfig(**{**CFG.to_dict(), "head": "flat"}))
    with pytest.raises(ValueError, match="one top_p"):
        flat.sample(h, 1.0, top_p=(1.0, 0.9, 1.0, 1.0))


def test_seeded_sampling_is_reproducible():
    model = _model()
    h = model.hidden(*_inputs(8, 3))[:, -1]
    a = model.sample(h, 1.0, torch.Generator().manual_seed(7))
    b = model.sample(h, 1.0, torch.Generator().manual_seed(7))
    c = model.sample(h, 1.0, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < VOCAB_SIZE


def test_factorized_head_normalizes_over_all_ids():
    torch.manual_seed(0)
    head = FactorizedHead(16)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p))
    h = torch.randn(2, 16)
    logp = head.full_log_probs(h)
    assert logp.shape == (2, VOCAB_SIZE)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, dtype=logp.dtype))
    ids = torch.tensor([5, 40_000])
    torch.testing.assert_close(head.log_prob(h, ids), logp[torch.arange(2), ids])


def test_factorized_sampling_follows_its_distribution():
    """Empirical frequencies of sampled types match p(type) (a cheap check of the chain)."""
    torch.manual_seed(0)
    head = FactorizedHead(8)
    with torch.no_grad():
        head.kind.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        head.kind.weight.zero_()
    h = torch.zeros(20_000, 8)
    t, *_ = split_ids(head.sample(h, 1.0, torch.Generator().manual_seed(3)))
    freq = torch.bincount(t, minlength=3).double() / len(t)
    expected = torch.softmax(torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), 0)
    assert torch.allclose(freq, expected, atol=0.015)


def test_flat_head_normalizes():
    head = FlatHead(8)
    logp = head.full_log_probs(torch.randn(3, 8))
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3))
