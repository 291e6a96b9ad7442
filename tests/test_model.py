import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model

from omnibyte.errors import OmniByteError
from omnibyte.model.transformer import CONFIG_FILE, WEIGHTS_FILE, BytePredictor, apply_rotary

TOKENS = torch.tensor([[256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 258, 1, 2, 3, 4]])


def reference_forward(model: BytePredictor, idx: torch.Tensor) -> torch.Tensor:
    """The model written out by hand: every query head against its K/V head, explicit softmax."""
    c = model.config
    T = idx.size(1)
    x = model.tok_embeddings(idx)
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    group = c.n_heads // c.n_kv_heads
    for block in model.blocks:
        a = block.attn
        h = block.attn_norm(x)
        qkv = a.qkv(h).view(1, T, c.n_heads + 2 * c.n_kv_heads, c.head_dim)
        q, k, v = qkv.split([c.n_heads, c.n_kv_heads, c.n_kv_heads], dim=2)
        q = apply_rotary(a.q_norm(q), cos, sin)
        k = apply_rotary(a.k_norm(k), cos, sin)
        heads = []
        for head in range(c.n_heads):
            kv = head // group
            scores = q[0, :, head] @ k[0, :, kv].T / math.sqrt(c.head_dim)
            scores = scores.masked_fill(~causal, float("-inf"))
            heads.append(torch.softmax(scores, dim=-1) @ v[0, :, kv])
        x = x + a.out(torch.cat(heads, dim=-1)[None])
        x = x + block.mlp(block.mlp_norm(x))
    return model.lm_head(model.norm(x))


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_attention_matches_a_hand_written_reference_for_mqa_gqa_and_mha(n_kv_heads):
    model = tiny_model(n_kv_heads=n_kv_heads)
    with torch.no_grad():
        torch.testing.assert_close(model(TOKENS), reference_forward(model, TOKENS), atol=1e-5, rtol=1e-5)


def test_gqa_with_as_many_kv_heads_as_query_heads_is_plain_multi_head_attention():
    model = tiny_model(n_kv_heads=4)
    c = model.config
    T = TOKENS.size(1)
    block = model.blocks[0]
    x = torch.randn(1, T, c.d_model)
    with torch.no_grad():
        ours = block.attn(x, model.rope_cos[:T], model.rope_sin[:T], None, True, None)
        qkv = block.attn.qkv(x).view(1, T, 3 * c.n_heads, c.head_dim)
        q, k, v = qkv.split(c.n_heads, dim=2)
        q = apply_rotary(block.attn.q_norm(q), model.rope_cos[:T], model.rope_sin[:T]).transpose(1, 2)
        k = apply_rotary(block.attn.k_norm(k), model.rope_cos[:T], model.rope_sin[:T]).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), is_causal=True)  # no grouping at all
        plain = block.attn.out(y.transpose(1, 2).reshape(1, T, c.d_model))
    torch.testing.assert_close(ours, plain, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_cached_decoding_gives_the_same_logits_as_a_full_forward_pass(n_kv_heads):
    model = tiny_model(n_kv_heads=n_kv_heads)
    with torch.no_grad():
        full = model(TOKENS)
        model.setup_kv_cache(batch_size=1)
        pieces = [model(TOKENS[:, :7], start_pos=0), model(TOKENS[:, 7:12], start_pos=7)]
        pieces += [model(TOKENS[:, i:i + 1], start_pos=i) for i in range(12, TOKENS.size(1))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_never_lands_in_a_checkpoint(model):
    model.setup_kv_cache(batch_size=2)
    assert not any("kv_cache" in name or "rope" in name for name in model.state_dict())


def test_decoding_without_a_cache_is_refused(model):
    with pytest.raises(OmniByteError, match="setup_kv_cache"):
        model(TOKENS[:, :1], start_pos=0)


def test_sequences_longer_than_the_context_are_refused(model):
    with pytest.raises(OmniByteError, match="exceeds the model's context"):
        model(torch.zeros(1, model.config.max_seq_len + 1, dtype=torch.long))


def test_document_mask_keeps_a_document_from_seeing_the_one_before_it(model):
    second = torch.tensor([[256, 5, 6, 7, 8]])
    doc_ids = torch.tensor([[0] * 6 + [1] * 5])
    with torch.no_grad():
        a = model(torch.cat([torch.tensor([[256, 1, 2, 3, 4, 5]]), second], dim=1), doc_ids=doc_ids)
        b = model(torch.cat([torch.tensor([[256, 9, 9, 9, 9, 9]]), second], dim=1), doc_ids=doc_ids)
        unmasked = model(torch.cat([torch.tensor([[256, 9, 9, 9, 9, 9]]), second], dim=1))
    # rotary embeddings are relative, so the second document's logits do not depend on the first
    torch.testing.assert_close(a[:, 6:], b[:, 6:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(b[:, 6:], unmasked[:, 6:], atol=1e-4)


def test_last_only_returns_just_the_last_position(model):
    with torch.no_grad():
        torch.testing.assert_close(model(TOKENS, last_only=True), model(TOKENS)[:, -1:])


def test_save_and_load_round_trip_gives_identical_logits(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = BytePredictor.from_pretrained(tmp_path)
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(TOKENS), model(TOKENS), atol=0, rtol=0)


def test_half_precision_checkpoints_load_back_as_float32(model, tmp_path):
    model.save_pretrained(tmp_path, dtype=torch.float16)
    loaded = BytePredictor.from_pretrained(tmp_path)
    assert loaded.lm_head.weight.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(loaded(TOKENS), model(TOKENS), atol=2e-2, rtol=1e-2)


def test_corrupt_weights_are_a_clear_error(model, tmp_path):
    model.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x80\x04not safetensors at all")
    with pytest.raises(OmniByteError, match="corrupt"):
        BytePredictor.from_pretrained(tmp_path)


def test_truncated_weights_are_a_clear_error(model, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OmniByteError, match="corrupt"):
        BytePredictor.from_pretrained(tmp_path)


@pytest.mark.parametrize("field, value, message", [
    ('"n_layers": 2', '"n_layers": 3', "does not match its config"),
    ('"mlp_hidden": 64', '"mlp_hidden": 96', "has shape"),
])
def test_weights_that_do_not_match_the_config_are_a_clear_error(model, tmp_path, field, value, message):
    model.save_pretrained(tmp_path)
    config = tmp_path / CONFIG_FILE
    config.write_text(config.read_text().replace(field, value))
    with pytest.raises(OmniByteError, match=message):
        BytePredictor.from_pretrained(tmp_path)


def test_missing_checkpoint_parts_are_named(tmp_path):
    with pytest.raises(OmniByteError, match="folder not found"):
        BytePredictor.from_pretrained(tmp_path / "nope")
    with pytest.raises(OmniByteError, match="config not found"):
        BytePredictor.from_pretrained(tmp_path)
    tiny_model().save_pretrained(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(OmniByteError, match="not readable JSON"):
        BytePredictor.from_pretrained(tmp_path)
