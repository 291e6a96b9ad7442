import ctypes
import ctypes.util
import platform

import numpy as np
import pytest
import torch
from conftest import tiny_model

from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.model.deterministic import (
    LANES,
    DeterministicStep,
    byte_frequencies,
    check_float_environment,
    rope_tables,
)
from omnibyte.model.transformer import rope_tables as model_rope_tables
from omnibyte.tools.compress import FREQ_SCALE, prefix_tokens

F = np.float32
FILES = {Modality.TEXT: "Grüße aus Zürich, byte for byte.".encode(), Modality.IMAGE: bytes(range(0, 250, 9)),
         Modality.AUDIO: bytes(128 + int(90 * np.sin(i / 3)) for i in range(28)),
         Modality.VIDEO: b"FRAME\n" + bytes(22),
         Modality.BINARY: bytes(np.random.default_rng(0).integers(0, 256, 28, dtype=np.uint8))}


def model_with_every_weight_set(n_kv_heads: int = 2, attention_window: int | None = None):
    """A tiny model whose norm gains are not all ones and whose outputs are peaked."""
    model = tiny_model(n_kv_heads=n_kv_heads, attention_window=attention_window)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model


# --- a NumPy transcription of deterministic.py's arithmetic ----------------------------------------
# Every operation is a float32 NumPy ufunc (+ - * / sqrt floor, each correctly rounded on any
# machine), applied in the order deterministic.py writes, vectorised across rows and heads only.
# The weights are the step's own arrays: preparing them is elementwise NumPy, the same anywhere.

def lane_sum(v: np.ndarray) -> np.ndarray:
    n = v.shape[-1]
    whole = n - n % LANES
    acc = [np.zeros(v.shape[:-1], F) for _ in range(LANES)]
    for i in range(0, whole, LANES):
        acc = [a + v[..., i + lane] for lane, a in enumerate(acc)]
    total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    for i in range(whole, n):
        total = total + v[..., i]
    return total


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    t = np.maximum(x, F(-87.0)) * F(1.4426950408889634)
    k = np.floor(t)
    f = t - k
    m = np.full_like(x, F(1.5353362e-4))
    for c in (1.3398874e-3, 9.6180536e-3, 5.5503324e-2, 2.4022648e-1, 6.9314718e-1, 1.0):
        m = m * f + F(c)
    return m * np.ldexp(F(1.0), k.astype(np.int32)).astype(F)


def softmax(v: np.ndarray) -> np.ndarray:
    e = exp_nonpositive(v - v.max(axis=-1, keepdims=True))
    return e / lane_sum(e)[..., None]


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], w.shape[1]), F)
    for i in range(w.shape[0]):
        out = out + x[:, i:i + 1] * w[i]
    return out


def rms_normed(x: np.ndarray, eps: np.float32) -> np.ndarray:
    scale = F(1.0) / np.sqrt(lane_sum(x * x) / F(x.shape[-1]) + eps)
    return x * scale[..., None]


def silu(g: np.ndarray) -> np.ndarray:
    positive = g / (F(1.0) + exp_nonpositive(-np.abs(g)))
    e = exp_nonpositive(np.minimum(g, F(0.0)))
    return np.where(g >= 0, positive, g * e / (F(1.0) + e))


def reference_logits(step: DeterministicStep, tokens: np.ndarray) -> np.ndarray:
    """Logits (B, T, vocab) of tokens (B, T), position by position as the step computes them."""
    batch, steps = tokens.shape
    n_heads, n_qk, hd = step.weights.n_heads, step.weights.qk_gain.shape[1], step.weights.qk_gain.shape[2]
    n_kv = n_qk - n_heads
    group = n_heads // n_kv
    keys = np.zeros((step.weights.qkv.shape[0], batch, n_kv, steps, hd), F)  # (L, B, K, S, hd)
    values = np.zeros_like(keys)
    out = []
    for pos in range(steps):
        x = step.weights.embedding[tokens[:, pos]]  # (B, d_model)
        for layer in range(step.weights.qkv.shape[0]):
            qkv = matmul(rms_normed(x, step.weights.eps), step.weights.qkv[layer])
            heads = qkv[:, :n_qk * hd].reshape(batch, n_qk, hd)
            scale = F(1.0) / np.sqrt(lane_sum(heads * heads) / F(hd) + step.weights.eps)  # (B, n_qk)
            qk = scale[..., None] * (heads * step.weights.qk_gain[layer] * step.cos[pos]
                                     + heads[..., step.weights.rotated] * step.weights.qk_gain_rotated[layer]
                                       * step.sin[pos])
            keys[layer, :, :, pos] = qk[:, n_heads:]
            values[layer, :, :, pos] = qkv[:, n_qk * hd:].reshape(batch, n_kv, hd)
            q = qk[:, :n_heads].reshape(batch, n_kv, group, hd)
            first = max(0, pos + 1 - step.weights.window)  # the window's most recent positions
            scores = np.zeros((batch, n_kv, group, pos + 1 - first), F)
            for j in range(hd):
                scores = scores + q[..., j:j + 1] * keys[layer, :, :, None, first:pos + 1, j]
            weights = softmax(scores)
            mixed = np.zeros((batch, n_kv, group, hd), F)
            for t in range(first, pos + 1):
                mixed = mixed + weights[..., t - first:t - first + 1] * values[layer, :, :, None, t]
            x = x + matmul(mixed.reshape(batch, n_heads * hd), step.weights.out[layer])
            gate_up = matmul(rms_normed(x, step.weights.eps), step.weights.gate_up[layer])
            hidden = gate_up.shape[1] // 2
            x = x + matmul(silu(gate_up[:, :hidden]) * gate_up[:, hidden:], step.weights.down[layer])
        out.append(matmul(rms_normed(x, step.weights.eps), step.weights.lm_head))
    return np.stack(out, axis=1)


def reference_frequencies(logits: np.ndarray) -> np.ndarray:
    return (np.floor(softmax(logits[..., :256]) * F(FREQ_SCALE)) + F(1.0)).astype(np.float64)


def step_logits(step: DeterministicStep, tokens: np.ndarray) -> np.ndarray:
    return np.stack([step(tokens[:, pos], pos) for pos in range(tokens.shape[1])], axis=1)


# --- the tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_kv_heads, window", [(1, None), (2, None), (4, None), (2, 8)])
def test_the_step_computes_the_numpy_transcriptions_bits_for_every_modality(n_kv_heads, window):
    model = model_with_every_weight_set(n_kv_heads, window)
    tokens = np.array([(prefix_tokens(m) + list(data))[:28] for m, data in FILES.items()])
    step = DeterministicStep(model, batch_size=len(tokens), max_positions=tokens.shape[1])
    ours = step_logits(step, tokens)
    reference = reference_logits(step, tokens)
    np.testing.assert_array_equal(ours.view(np.int32), reference.view(np.int32))
    np.testing.assert_array_equal(byte_frequencies(ours.reshape(-1, ours.shape[-1]), FREQ_SCALE),
                                  reference_frequencies(reference).reshape(-1, 256))


@pytest.mark.parametrize("window", [None, 8])
def test_the_step_is_the_float_models_arithmetic_to_rounding(window):
    model = model_with_every_weight_set(attention_window=window)  # 8: well inside the 30 positions
    tokens = np.array([prefix_tokens(Modality.BINARY) + list(FILES[Modality.BINARY])])
    ours = step_logits(DeterministicStep(model, batch_size=1, max_positions=tokens.shape[1]), tokens)
    with torch.inference_mode():
        full = model(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(ours, full, atol=2e-4, rtol=1e-4)


def test_rows_never_mix():
    model = model_with_every_weight_set()
    tokens = np.array([(prefix_tokens(m) + list(data))[:22] for m, data in FILES.items()])
    together = step_logits(DeterministicStep(model, batch_size=len(tokens), max_positions=22), tokens)
    for row in range(len(tokens)):
        alone = step_logits(DeterministicStep(model, batch_size=1, max_positions=22), tokens[row:row + 1])
        np.testing.assert_array_equal(together[row:row + 1], alone)


def test_frequencies_follow_the_softmax_and_never_drop_a_byte():
    logits = np.full((2, 262), -1e4, np.float32)
    logits[0, :256] = np.linspace(-40, 10, 256)
    logits[1, 65] = 0.0  # every other byte impossible to float32
    freqs = byte_frequencies(logits, FREQ_SCALE)
    assert freqs.min() == 1 and freqs[1, 65] == FREQ_SCALE + 1 and (freqs[1] == 1).sum() == 255
    probs = np.exp(logits[0, :256].astype(np.float64) - 10)
    np.testing.assert_allclose(freqs[0] - 1, probs / probs.sum() * FREQ_SCALE, rtol=1e-4, atol=1)


def test_rope_tables_are_the_models_to_float32_rounding():
    for head_dim, positions, base in [(32, 4096, 10_000.0), (8, 64, 500.0)]:
        cos, sin = rope_tables(head_dim, positions, base)
        model_cos, model_sin = model_rope_tables(head_dim, positions, base)
        np.testing.assert_allclose(cos, model_cos.numpy(), rtol=0, atol=1.2e-7)
        np.testing.assert_allclose(sin, model_sin.numpy(), rtol=0, atol=1.2e-7)


def test_the_step_refuses_what_it_cannot_run():
    step = DeterministicStep(tiny_model(), batch_size=2, max_positions=8)
    with pytest.raises(OmniByteError, match="holds 2 streams, got 1"):
        step([65], 0)
    with pytest.raises(OmniByteError, match="outside the KV cache"):
        step([65, 66], 8)
    with pytest.raises(OmniByteError, match="token ids"):
        step([65, 999], 0)
    with pytest.raises(OmniByteError, match="context"):
        DeterministicStep(tiny_model(), batch_size=1, max_positions=65)


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64", reason="glibc's x86-64 fenv")
def test_a_process_that_rounds_another_way_is_refused():
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    check_float_environment()
    fe_upward, fe_tonearest = 0x800, 0
    assert libm.fesetround(fe_upward) == 0
    try:
        with pytest.raises(OmniByteError, match="IEEE default"):
            check_float_environment()
    finally:
        libm.fesetround(fe_tonearest)
    check_float_environment()
