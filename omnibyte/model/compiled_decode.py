"""The decoding step compiled with Numba from a BytePredictor's weights: a speed-up applied from
outside the model, like torch.compile or quantisation would be.

    step = CompiledDecodeStep(model)       # after model.setup_kv_cache(B) and a prefill
    logits = step(tokens, pos)             # tokens (B,) at position pos -> (B, vocab) float32

Why it exists: decoding one byte of the 3 M-parameter demo model is ~17 matrix-vector products
plus a few dozen tiny element-wise operations. On a 2-core CPU, eager PyTorch spends most of such
a step dispatching some 250 operators (about 4 us each), and NumPy still pays about 1 us for each
of its ~100. Here the whole step (norms, projections, RoPE, attention over the cache, SwiGLU, the
head) is one compiled loop nest: no dispatch, no temporaries, and each key/value head's cache
read for all the query heads that share it. benchmarks/decode.py has the figures.

The step reads and writes the model's own KV cache buffers (shared memory, no copies), so
PyTorch still does the prefill and the sliding-window refill, and the two paths can be mixed.
The arithmetic is the model's, reordered where that is exact in real numbers: RMSNorm gains are
folded into the matrix that follows them, the 1/sqrt(head_dim) attention scale into the query
norm's gain, and rotate-half RoPE becomes an index table. Sums may be reassociated (vectorised),
so results agree with `decode_one` to float32 rounding, not bit for bit
(tests/test_compiled_decode.py), and differ between CPUs in the last bits. `omnibyte compress`,
which needs the same frequencies on every machine, runs `deterministic.py` instead (container
version 5; versions 2 and 4 of earlier releases ran this step and are still read).

Compiling takes a few seconds the first time on a machine; Numba caches the machine code on disk
(`cache=True`), and `warm_up()` lets the app pay that cost at start-up instead of on a first click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch
import torch.nn as nn

from omnibyte.errors import OmniByteError
from omnibyte.model.transformer import BytePredictor

__all__ = ["CompiledDecodeStep", "compiled_decode_supported", "warm_up"]

# Reassociation and contraction (FMA) let sums vectorise; NaN and infinity keep their meaning.
_FAST = {"reassoc", "contract", "arcp", "nsz"}
_jit = numba.njit(cache=True, fastmath=_FAST, nogil=True)  # nogil: the app's server threads run on


@_jit
def _rows_times_matrix(x, w, out):
    """out (B, n_out) = x (B, n_in) @ w (n_in, n_out). Each weight row is read once for the whole
    batch while it is in cache, so a batch costs far less than its streams one by one."""
    out[:] = 0.0
    for i in range(w.shape[0]):
        for b in range(x.shape[0]):
            xi = x[b, i]
            for j in range(w.shape[1]):
                out[b, j] += xi * w[i, j]


@_jit
def _rms_normed(x, eps, out):
    """out = x / rms(x), row by row (the gain is folded into the next matrix)."""
    for b in range(x.shape[0]):
        total = np.float32(0.0)
        for i in range(x.shape[1]):
            total += x[b, i] * x[b, i]
        scale = np.float32(1.0) / np.sqrt(total / x.shape[1] + eps)
        for i in range(x.shape[1]):
            out[b, i] = x[b, i] * scale


@_jit
def _exp_split(x):
    """e**x for -87 <= x <= 0 as (m, k) with e**x = m * 2**k, m in [1, 2): 2**frac by a degree-6
    polynomial. Relative error under 1e-5 over the whole range (mostly float32 rounding of x / ln 2;
    libm's is ~1e-7), far below what changes a softmax weight that matters. Unlike libm's expf, a
    loop of this vectorises; the caller adds k to the float's exponent bits. With expf, softmax
    was a third of the attention's time."""
    t = max(x, np.float32(-87.0)) * np.float32(1.4426950408889634)  # x / ln 2
    k = np.floor(t)
    f = t - k
    m = np.float32(1.5353362e-4)
    m = m * f + np.float32(1.3398874e-3)
    m = m * f + np.float32(9.6180536e-3)
    m = m * f + np.float32(5.5503324e-2)
    m = m * f + np.float32(2.4022648e-1)
    m = m * f + np.float32(6.9314718e-1)
    m = m * f + np.float32(1.0)
    return m, np.int32(k)


@_jit
def _softmax_rows(scores):
    """Softmax of each row of a C-contiguous float32 (rows, n), in place."""
    bits = scores.view(np.int32)
    for g in range(scores.shape[0]):
        top = scores[g, 0]
        for t in range(1, scores.shape[1]):
            top = max(top, scores[g, t])
        for t in range(scores.shape[1]):
            m, k = _exp_split(scores[g, t] - top)
            scores[g, t] = m
            bits[g, t] += k << 23  # m * 2**k: k >= -126 keeps it a normal float
        total = np.float32(0.0)
        for t in range(scores.shape[1]):
            total += scores[g, t]
        for t in range(scores.shape[1]):
            scores[g, t] /= total


@_jit
def _decode_step(tokens, positions, embedding, cos, sin, rotated, qkv_w, qk_gain, qk_gain_rotated, out_w, gate_up_w,
                 down_w, lm_head, k_caches, v_caches, n_heads, eps, window):
    batch, d_model = tokens.shape[0], embedding.shape[1]
    n_qk, head_dim = qk_gain.shape[1], qk_gain.shape[2]  # n_qk = query heads + key/value heads
    n_kv = n_qk - n_heads
    group, hidden = n_heads // n_kv, down_w.shape[1]
    # each stream at its own position (guidance's two contexts differ in length); stream b
    # attends to its cached positions first..positions[b], this one included: the `window`
    # most recent (a window as long as the context is full attention)

    x = np.empty((batch, d_model), np.float32)
    for b in range(batch):
        x[b] = embedding[tokens[b]]
    normed = np.empty((batch, d_model), np.float32)
    qkv = np.empty((batch, qkv_w.shape[2]), np.float32)
    qk = np.empty((n_qk, head_dim), np.float32)
    attended = np.empty((batch, n_heads * head_dim), np.float32)
    score_buffer = np.empty(group * (positions.max() + 1), np.float32)
    mixed = np.empty((group, head_dim), np.float32)
    delta = np.empty((batch, d_model), np.float32)
    gate_up = np.empty((batch, 2 * hidden), np.float32)
    activated = np.empty((batch, hidden), np.float32)

    for layer in range(qkv_w.shape[0]):
        k_cache, v_cache = k_caches[layer], v_caches[layer]  # (B, K, S, head_dim) each
        _rms_normed(x, eps, normed)
        _rows_times_matrix(normed, qkv_w[layer], qkv)
        for b in range(batch):
            pos = positions[b]
            first = max(0, pos + 1 - window)
            n = pos + 1 - first
            cos_here, sin_here = cos[pos], sin[pos]
            scores = score_buffer[:group * n].reshape((group, n))  # C-contiguous, as the softmax needs
            # QK-norm then RoPE, per head: normed * gain * cos + rotate_half(normed * gain) * sin
            for h in range(n_qk):
                row = qkv[b, h * head_dim:(h + 1) * head_dim]
                total = np.float32(0.0)
                for j in range(head_dim):
                    total += row[j] * row[j]
                scale = np.float32(1.0) / np.sqrt(total / head_dim + eps)
                for j in range(head_dim):
                    qk[h, j] = scale * (row[j] * qk_gain[layer, h, j] * cos_here[j]
                                        + row[rotated[j]] * qk_gain_rotated[layer, h, j] * sin_here[j])
            v_start = n_qk * head_dim
            for kv in range(n_kv):
                k_cache[b, kv, pos] = qk[n_heads + kv]
                v_cache[b, kv, pos] = qkv[b, v_start + kv * head_dim:v_start + (kv + 1) * head_dim]
            # attention: the `group` query heads that share a key/value head read its cache once
            for kv in range(n_kv):
                keys, values = k_cache[b, kv], v_cache[b, kv]  # whole, so Numba keeps them contiguous
                for t in range(n):
                    for g in range(group):
                        total = np.float32(0.0)
                        for j in range(head_dim):
                            total += keys[first + t, j] * qk[kv * group + g, j]
                        scores[g, t] = total
                _softmax_rows(scores)  # over positions
                mixed[:] = 0.0
                for t in range(n):
                    for g in range(group):
                        weight = scores[g, t]
                        for j in range(head_dim):
                            mixed[g, j] += weight * values[first + t, j]
                for g in range(group):
                    head = kv * group + g
                    attended[b, head * head_dim:(head + 1) * head_dim] = mixed[g]
        _rows_times_matrix(attended, out_w[layer], delta)
        x += delta
        _rms_normed(x, eps, normed)
        _rows_times_matrix(normed, gate_up_w[layer], gate_up)
        for b in range(batch):  # SwiGLU: silu(gate) * up
            for i in range(hidden):
                gate = gate_up[b, i]
                activated[b, i] = gate / (np.float32(1.0) + np.exp(-gate)) * gate_up[b, hidden + i]
        _rows_times_matrix(activated, down_w[layer], delta)
        x += delta
    _rms_normed(x, eps, normed)
    logits = np.empty((batch, lm_head.shape[1]), np.float32)
    _rows_times_matrix(normed, lm_head, logits)
    return logits


def compiled_decode_supported(model: BytePredictor) -> bool:
    """The compiled step runs a plain BytePredictor in float32 on a CPU; a GPU, another dtype, a
    replaced output head or a forward hook (tests steer and count with them), the value head or
    the patched model (the trials' architectures) stays in PyTorch. An attention window runs."""
    weight = model.tok_embeddings.weight
    plain = type(model.lm_head) is nn.Linear and not any(m._forward_hooks or m._forward_pre_hooks
                                                         for m in model.modules())
    plain = plain and type(model) is BytePredictor and model.value_head is None
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and plain


def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float32).numpy())


@dataclass(frozen=True)
class FoldedWeights:
    """The model's weights as the compiled steps read them (this one and deterministic.py's):
    float32 NumPy arrays, matrices as (in, out), each RMSNorm's gain folded into the matrix after
    it and the attention scale into the query norm's gain. Every product is one float32
    multiplication, correctly rounded, so the same model folds to the same bits on any machine."""

    embedding: np.ndarray  # (vocab, d_model)
    rotated: np.ndarray  # rotate_half(x) = concat(-x2, x1) = x[rotated] * sign
    sign: np.ndarray
    qkv: np.ndarray  # (L, d_model, (H + 2K) hd)
    qk_gain: np.ndarray  # (L, H + K, hd)
    qk_gain_rotated: np.ndarray
    out: np.ndarray  # (L, d_model, d_model)
    gate_up: np.ndarray  # (L, d_model, 2 hidden)
    down: np.ndarray  # (L, hidden, d_model)
    lm_head: np.ndarray  # (d_model, vocab)
    n_heads: int
    eps: np.float32
    window: int  # positions each query sees, itself included: the context when attention is full


def fold_weights(model: BytePredictor) -> FoldedWeights:
    config = model.config
    hd, half = config.head_dim, config.head_dim // 2
    rotated = np.concatenate([np.arange(half, hd), np.arange(half)])
    # the attention scale in float64 once, then one float32 product per gain
    attention_scale = np.float32(1.0 / math.sqrt(hd))
    qkv, qk_gain, out, gate_up, down = [], [], [], [], []
    for block in model.blocks:
        attn, mlp = block.attn, block.mlp
        q_gain, k_gain = _f32(attn.q_norm.weight) * attention_scale, _f32(attn.k_norm.weight)
        qk_gain.append(np.concatenate([np.tile(q_gain, (config.n_heads, 1)),
                                       np.tile(k_gain, (config.n_kv_heads, 1))]))  # (H + K, hd)
        # x_normed @ W.T * g == x_normed @ (W.T * g[:, None]): the norm's gain folded into W
        qkv.append(_f32(attn.qkv.weight).T * _f32(block.attn_norm.weight)[:, None])
        out.append(_f32(attn.out.weight).T)
        gate_up.append(_f32(mlp.gate_up.weight).T * _f32(block.mlp_norm.weight)[:, None])
        down.append(_f32(mlp.down.weight).T)
    qkv_, out_, gate_up_, down_ = (np.ascontiguousarray(np.stack(w)) for w in (qkv, out, gate_up, down))
    qk_gain_ = np.ascontiguousarray(np.stack(qk_gain))
    return FoldedWeights(
        embedding=_f32(model.tok_embeddings.weight), rotated=rotated,
        sign=np.concatenate([-np.ones(half), np.ones(half)]).astype(np.float32),
        qkv=qkv_, qk_gain=qk_gain_, qk_gain_rotated=np.ascontiguousarray(qk_gain_[:, :, rotated]), out=out_,
        gate_up=gate_up_, down=down_,
        lm_head=np.ascontiguousarray(_f32(model.lm_head.weight).T * _f32(model.norm.weight)[:, None]),
        n_heads=config.n_heads, eps=np.float32(config.norm_eps),
        window=config.attention_window or config.max_seq_len)


def checked_tokens(tokens, pos, batch_size: int, max_positions: int, vocab_size: int) -> np.ndarray:
    """One token id per stream as int64, or an OmniByteError saying what does not fit the step.
    `pos`: one position for every stream, or one each."""
    tokens = np.ascontiguousarray(tokens, dtype=np.int64).reshape(-1)
    if tokens.shape[0] != batch_size:
        raise OmniByteError(f"the KV cache holds {batch_size} streams, got {tokens.shape[0]} tokens")
    # a stream or two per step: Python's min and max over their lists cost far less than NumPy's
    positions = np.asarray(pos).reshape(-1).tolist()
    if np.ndim(pos) and len(positions) != batch_size:
        raise OmniByteError(f"the KV cache holds {batch_size} streams, got {len(positions)} positions")
    if not (0 <= min(positions) and max(positions) < max_positions):
        raise OmniByteError(f"position {pos} is outside the KV cache of {max_positions}")
    ids = tokens.tolist()
    if min(ids) < 0 or max(ids) >= vocab_size:
        raise OmniByteError(f"token ids must be in 0-{vocab_size - 1}")
    return tokens


class CompiledDecodeStep:
    """Feed one token per stream at a position, get the next token's logits; uses the model's KV cache."""

    def __init__(self, model: BytePredictor) -> None:
        caches = [block.attn.kv_cache for block in model.blocks]
        if caches[0] is None:
            raise OmniByteError("the compiled decode step needs the model's KV cache: call setup_kv_cache() first")
        if not compiled_decode_supported(model):
            raise OmniByteError("the compiled decode step runs a plain float32 BytePredictor on a CPU")
        self.weights = fold_weights(model)
        self.cos = _f32(model.rope_cos)  # (max_seq_len, head_dim)
        self.sin = _f32(model.rope_sin) * self.weights.sign
        # the cache buffers' own memory: what PyTorch's prefill wrote, this step reads
        self.k_caches = tuple(cache.k.numpy() for cache in caches)  # (B, K, S, hd) each
        self.v_caches = tuple(cache.v.numpy() for cache in caches)
        self.batch_size, self.max_positions = self.k_caches[0].shape[0], self.k_caches[0].shape[2]

    def __call__(self, tokens, pos) -> np.ndarray:
        """Logits (B, vocab) of the tokens after `tokens` (one per stream), which sit at `pos`:
        one position for every stream, or one each (B,)."""
        w = self.weights
        positions = np.full(self.batch_size, pos, dtype=np.int64) if np.ndim(pos) == 0 \
            else np.ascontiguousarray(pos, dtype=np.int64)
        tokens = checked_tokens(tokens, positions, self.batch_size, self.max_positions, w.embedding.shape[0])
        return _decode_step(tokens, positions, w.embedding, self.cos, self.sin, w.rotated, w.qkv, w.qk_gain,
                            w.qk_gain_rotated, w.out, w.gate_up, w.down, w.lm_head, self.k_caches,
                            self.v_caches, w.n_heads, w.eps, w.window)


def warm_up(model: BytePredictor) -> None:
    """Compile (or load from Numba's disk cache) the step for this model's shape, so that the
    first real generation does not wait for it. The model's KV cache is left unset."""
    if not compiled_decode_supported(model):
        return
    model.setup_kv_cache(batch_size=1)
    try:
        CompiledDecodeStep(model)(np.zeros(1, np.int64), 0)
    finally:
        model.clear_kv_cache()
