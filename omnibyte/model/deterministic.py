"""The coder's model step: the same next-byte frequencies on every machine, bit for bit.

    step = DeterministicStep(model, batch_size=B, max_positions=S)   # its own KV cache
    logits = step(tokens, pos)               # tokens (B,) at position pos -> (B, vocab) float32
    freqs = byte_frequencies(logits, scale)  # (B, 256) integer frequencies, each at least 1

A range decoder must see exactly the frequencies the encoder used. `compiled_decode.py` is
compiled with fast-math: Numba may fuse a multiply and an add into one FMA instruction (one
rounding instead of two) where the CPU has FMA, and split a sum into as many partial sums as
the CPU's vector registers hold, so another CPU computes other last bits; libm's and NumPy's
`exp` also differ between machines. This step gives those freedoms up, and nothing else:

- IEEE 754 requires + - * / and sqrt on float32 to be correctly rounded, so one sequence of
  them gives one result on every conforming machine (x86-64 from SSE2 on, ARM64), whatever
  vector width the compiler picks. Numba compiles this module without fast-math: no FMA
  contraction, no reassociation, no reciprocal tricks.
- Every sum runs in an order written in the code: elementwise loops (a matrix product is a sum
  over the input index, one row of weights at a time, vectorised across outputs; attention
  scores likewise across positions, from a key cache stored transposed), and the few true
  reductions (norms, softmax totals) in eight explicit partial sums combined in a fixed order,
  which vectorises as well on any vector width without changing a bit.
- exp is a polynomial in + and * on 2**frac plus an exponent set by integer bit operations;
  sqrt and division are IEEE's. Rotary cos/sin tables are built from + - * / alone
  (`rope_tables`), never libm's cos, sin, exp or pow, which may differ in the last bit.
- One thread, rows never mixed: the thread count cannot matter.
- The floating-point environment is checked before coding (`check_float_environment`): a
  process where a library switched on flush-to-zero or another rounding mode would compute
  other bits, and is refused with a clear error instead.

The arithmetic is the float32 model's to rounding (norm gains folded into the matrices, the
attention scale into the query norm's gain), so it codes as well as the float model; quantised
integer weights would give the same guarantee but lose some of the model's precision, and bits.
tests/test_deterministic.py
checks the frequencies bit for bit against a NumPy transcription of the same arithmetic, and
against this module compiled for Numba's generic x86-64 target (no AVX, no FMA).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from omnibyte.errors import OmniByteError
from omnibyte.model.compiled_decode import checked_tokens, fold_weights
from omnibyte.model.transformer import BytePredictor

__all__ = ["DeterministicStep", "byte_frequencies", "check_float_environment", "rope_tables", "warm_up", "LANES"]

# Without fastmath: the default, and the point of this module (see the docstring).
_jit = numba.njit(cache=True, nogil=True)

LANES = 8  # partial sums of every reduction; fixed, so the result never depends on the vector width
_LOG2E = np.float32(1.4426950408889634)
_EXP_FLOOR = np.float32(-87.0)  # e**-87 is still a normal float32: 2**k with k >= -126
_POWERS_OF_TWO = np.ldexp(np.float32(1.0), np.arange(-126, 1)).astype(np.float32)  # 2**-126 .. 2**0, exact


@_jit
def _lane_sum(v, n):
    """v[0] + ... + v[n - 1] in a fixed order: eight interleaved partial sums, combined pairwise,
    then the tail in order."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
    whole = n - n % LANES
    for i in range(0, whole, LANES):
        a0 += v[i]
        a1 += v[i + 1]
        a2 += v[i + 2]
        a3 += v[i + 3]
        a4 += v[i + 4]
        a5 += v[i + 5]
        a6 += v[i + 6]
        a7 += v[i + 7]
    total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for i in range(whole, n):
        total += v[i]
    return total


@_jit
def _lane_max(v, n):
    """max(v[:n]), in eight partial maxima like `_lane_sum` (a maximum is exact in any order; the
    lanes only let it vectorise)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = v[0]
    whole = n - n % LANES
    for i in range(0, whole, LANES):
        m0 = max(m0, v[i])
        m1 = max(m1, v[i + 1])
        m2 = max(m2, v[i + 2])
        m3 = max(m3, v[i + 3])
        m4 = max(m4, v[i + 4])
        m5 = max(m5, v[i + 5])
        m6 = max(m6, v[i + 6])
        m7 = max(m7, v[i + 7])
    top = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for i in range(whole, n):
        top = max(top, v[i])
    return top


@_jit
def _exp_split(x):
    """e**x for x <= 0 (clamped at -87) as (m, k), e**x = m * 2**k with m in [1, 2): 2**frac by a
    degree-6 polynomial (relative error under 1e-5). k >= -126 keeps m * 2**k a normal float32,
    so setting k in the exponent bits and multiplying by 2**k are the same, exact, operation."""
    t = max(x, _EXP_FLOOR) * _LOG2E
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
def _exp_nonpositive(x):
    m, k = _exp_split(x)
    return m * _POWERS_OF_TWO[k + 126]


@_jit
def _softmax_in_place(v, n):
    """Softmax of v[:n] in place, for a C-contiguous float32 v."""
    top = _lane_max(v, n)
    bits = v.view(np.int32)
    for t in range(n):  # e**(v - top), the power of two set in the exponent bits: this vectorises
        m, k = _exp_split(v[t] - top)
        v[t] = m
        bits[t] += k << 23
    total = _lane_sum(v, n)
    for t in range(n):
        v[t] /= total


@_jit
def _rows_times_matrix(x, w, out):
    """out (B, n_out) = x (B, n_in) @ w (n_in, n_out), summed over n_in in index order."""
    out[:] = 0.0
    for i in range(w.shape[0]):
        for b in range(x.shape[0]):
            xi = x[b, i]
            for j in range(w.shape[1]):
                out[b, j] += xi * w[i, j]


@_jit
def _rms_normed(x, eps, squares, out):
    """out = x / rms(x), row by row (the gain is folded into the next matrix)."""
    n = x.shape[1]
    for b in range(x.shape[0]):
        for i in range(n):
            squares[i] = x[b, i] * x[b, i]
        scale = np.float32(1.0) / np.sqrt(_lane_sum(squares, n) / np.float32(n) + eps)
        for i in range(n):
            out[b, i] = x[b, i] * scale


@_jit
def _silu(g):
    """g * sigmoid(g), with e**x only for x <= 0."""
    if g >= np.float32(0.0):
        return g / (np.float32(1.0) + _exp_nonpositive(-g))
    e = _exp_nonpositive(g)
    return g * e / (np.float32(1.0) + e)


@_jit
def _step(tokens, pos, embedding, cos, sin, rotated, qkv_w, qk_gain, qk_gain_rotated, out_w, gate_up_w, down_w,
          lm_head, k_caches, v_caches, n_heads, eps, window):
    batch, d_model = tokens.shape[0], embedding.shape[1]
    n_qk, head_dim = qk_gain.shape[1], qk_gain.shape[2]  # n_qk = query heads + key/value heads
    n_kv = n_qk - n_heads
    group, hidden = n_heads // n_kv, down_w.shape[1]
    first = max(0, pos + 1 - window)  # the `window` most recent cached positions, this one included
    n = pos + 1 - first

    x = np.empty((batch, d_model), np.float32)
    for b in range(batch):
        x[b] = embedding[tokens[b]]
    normed = np.empty((batch, d_model), np.float32)
    squares = np.empty(max(d_model, head_dim), np.float32)
    qkv = np.empty((batch, qkv_w.shape[2]), np.float32)
    qk = np.empty((n_qk, head_dim), np.float32)
    attended = np.empty((batch, n_heads * head_dim), np.float32)
    scores = np.empty((group, n), np.float32)
    mixed = np.empty((group, head_dim), np.float32)
    delta = np.empty((batch, d_model), np.float32)
    gate_up = np.empty((batch, 2 * hidden), np.float32)
    activated = np.empty((batch, hidden), np.float32)
    cos_here, sin_here = cos[pos], sin[pos]
    v_start = n_qk * head_dim

    for layer in range(qkv_w.shape[0]):
        k_cache, v_cache = k_caches[layer], v_caches[layer]  # (B, K, hd, S) and (B, K, S, hd)
        _rms_normed(x, eps, squares, normed)
        _rows_times_matrix(normed, qkv_w[layer], qkv)
        for b in range(batch):
            # QK-norm then RoPE, per head: normed * gain * cos + rotate_half(normed * gain) * sin
            for h in range(n_qk):
                row = qkv[b, h * head_dim:(h + 1) * head_dim]
                for j in range(head_dim):
                    squares[j] = row[j] * row[j]
                scale = np.float32(1.0) / np.sqrt(_lane_sum(squares, head_dim) / np.float32(head_dim) + eps)
                for j in range(head_dim):
                    qk[h, j] = scale * (row[j] * qk_gain[layer, h, j] * cos_here[j]
                                        + row[rotated[j]] * qk_gain_rotated[layer, h, j] * sin_here[j])
            for kv in range(n_kv):
                for j in range(head_dim):
                    k_cache[b, kv, j, pos] = qk[n_heads + kv, j]
                    v_cache[b, kv, pos, j] = qkv[b, v_start + kv * head_dim + j]
            # attention: the `group` query heads that share a key/value head read its cache once
            for kv in range(n_kv):
                keys, values = k_cache[b, kv], v_cache[b, kv]  # whole, so Numba keeps them contiguous
                # scores over positions, each summed over the head dimension in order
                scores[:] = 0.0
                for j in range(head_dim):
                    for g in range(group):
                        q = qk[kv * group + g, j]
                        for t in range(n):
                            scores[g, t] += q * keys[j, first + t]
                for g in range(group):
                    _softmax_in_place(scores[g], n)
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
        _rms_normed(x, eps, squares, normed)
        _rows_times_matrix(normed, gate_up_w[layer], gate_up)
        for b in range(batch):  # SwiGLU: silu(gate) * up
            for i in range(hidden):
                activated[b, i] = _silu(gate_up[b, i]) * gate_up[b, hidden + i]
        _rows_times_matrix(activated, down_w[layer], delta)
        x += delta
    _rms_normed(x, eps, squares, normed)
    logits = np.empty((batch, lm_head.shape[1]), np.float32)
    _rows_times_matrix(normed, lm_head, logits)
    return logits


@_jit
def _frequencies(logits, symbols, scale):
    """Softmax over the first `symbols` logits of each row, as integer frequencies
    floor(p * scale) + 1 (float64 holding integers)."""
    out = np.empty((logits.shape[0], symbols), np.float64)
    probs = np.empty(symbols, np.float32)
    for b in range(logits.shape[0]):
        for i in range(symbols):
            probs[i] = logits[b, i]
        _softmax_in_place(probs, symbols)
        for i in range(symbols):
            out[b, i] = np.floor(probs[i] * scale) + np.float32(1.0)
    return out


@_jit
def _float_environment(smallest_normal, half, one, quarter_ulp):
    """Whether this thread rounds to nearest and keeps subnormal numbers (IEEE's default). The
    operands come in as arguments so that nothing is folded at compile time."""
    keeps_subnormal_results = smallest_normal * half > np.float32(0.0)  # flush-to-zero gives 0
    subnormal = smallest_normal * half
    keeps_subnormal_inputs = subnormal * (one + one) == smallest_normal  # denormals-are-zero gives 0
    # 1 + 3/4 ulp is nearer 1 + 1 ulp; 1 + 1/4 ulp is nearer 1: only round-to-nearest gives both
    nearest = (one + quarter_ulp * np.float32(3.0) == one + quarter_ulp * np.float32(4.0)
               and one + quarter_ulp == one)
    return keeps_subnormal_results and keeps_subnormal_inputs and nearest


def check_float_environment() -> None:
    """Refuse to code where float32 arithmetic is not IEEE's default (see the module docstring)."""
    if not _float_environment(np.float32(2.0 ** -126), np.float32(0.5), np.float32(1.0), np.float32(2.0 ** -25)):
        raise OmniByteError("this process does not compute floats the IEEE default way (a library switched on "
                            "flush-to-zero or another rounding mode), so its model frequencies would differ "
                            "from other machines'; compress and decompress in a fresh Python process")


def byte_frequencies(logits: np.ndarray, scale: float, symbols: int = 256) -> np.ndarray:
    """(B, vocab) float32 logits -> (B, symbols) integer frequencies as float64, each at least 1:
    floor(p * scale) + 1 with p the softmax over the first `symbols` logits."""
    if not 0 < scale <= 2**24 or float(np.float32(scale)) != scale:
        raise OmniByteError(f"frequency scale {scale} must be an integer float32 holds exactly, at most 2**24")
    return _frequencies(np.ascontiguousarray(logits, dtype=np.float32), symbols, np.float32(scale))


def _series(x, coefficient, terms: int):
    """sum_k coefficient(k) * x**k for k < terms, by Horner's rule (+ and * only)."""
    total = x * 0.0
    for k in range(terms - 1, -1, -1):
        total = coefficient(k) + x * total
    return total


def rope_tables(head_dim: int, max_seq_len: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (max_seq_len, head_dim) float32 of `model.rope_tables`' angles, computed with
    + - * / on float64 alone (libm's pow, exp, cos and sin may differ between machines in the
    last bit): ln base by the atanh series, base ** (-2i / head_dim) as e**(-y / 1024) by its
    series squared ten times, each angle reduced to [-pi, pi] and expanded in Taylor series."""
    mantissa, exponent = math.frexp(base)  # exact: base = mantissa * 2**exponent, mantissa in [0.5, 1)
    z = (mantissa - 1.0) / (mantissa + 1.0)  # ln m = 2 atanh(z), |z| <= 1/3
    ln_base = 2.0 * z * _series(z * z, lambda k: 1.0 / (2 * k + 1), 24) + exponent * 0.6931471805599453
    exponents = -(np.arange(0, head_dim, 2, dtype=np.float64) / head_dim) * ln_base / 1024.0
    inv_freq = _series(exponents, lambda k: 1.0 / math.factorial(k), 12)
    for _ in range(10):
        inv_freq = inv_freq * inv_freq
    angles = np.arange(max_seq_len, dtype=np.float64)[:, None] * inv_freq[None, :]  # (S, head_dim / 2)
    two_pi = 6.283185307179586
    reduced = angles - np.floor(angles / two_pi + 0.5) * two_pi
    squared = reduced * reduced
    cos = _series(squared, lambda k: (-1.0 if k % 2 else 1.0) / math.factorial(2 * k), 18)
    sin = reduced * _series(squared, lambda k: (-1.0 if k % 2 else 1.0) / math.factorial(2 * k + 1), 18)
    # rotate-half layout, as in Llama
    return (np.concatenate([cos, cos], axis=1).astype(np.float32),
            np.concatenate([sin, sin], axis=1).astype(np.float32))


class DeterministicStep:
    """Feed one token per stream at a position, get the next token's logits, bit-identical on
    every machine. Holds its own KV cache (keys stored transposed), so every position, the
    prefix's included, must go through it, in order from 0."""

    def __init__(self, model: BytePredictor, batch_size: int, max_positions: int) -> None:
        config = model.config
        if type(model.lm_head) is not torch.nn.Linear:
            raise OmniByteError("the deterministic step runs a plain BytePredictor: its output head was replaced")
        if type(model) is not BytePredictor or config.value_head:
            raise OmniByteError("compression runs the flat model; this checkpoint is one of the architecture "
                                "trials' (a patched model or a value head)")
        if not 1 <= max_positions <= config.max_seq_len:
            raise OmniByteError(f"the cache of {max_positions} positions must fit the context of {config.max_seq_len}")
        self.weights = fold_weights(model)
        cos, sin = rope_tables(config.head_dim, max_positions, config.rope_base)
        self.cos, self.sin = cos, np.ascontiguousarray(sin * self.weights.sign)
        shape = (batch_size, config.n_kv_heads)
        self.k_caches = tuple(np.zeros(shape + (config.head_dim, max_positions), np.float32) for _ in model.blocks)
        self.v_caches = tuple(np.zeros(shape + (max_positions, config.head_dim), np.float32) for _ in model.blocks)
        self.batch_size, self.max_positions = batch_size, max_positions

    def __call__(self, tokens, pos: int) -> np.ndarray:
        """Logits (B, vocab) of the tokens after `tokens` (one per stream), which sit at `pos`."""
        w = self.weights
        tokens = checked_tokens(tokens, pos, self.batch_size, self.max_positions, w.embedding.shape[0])
        return _step(tokens, pos, w.embedding, self.cos, self.sin, w.rotated, w.qkv, w.qk_gain, w.qk_gain_rotated,
                     w.out, w.gate_up, w.down, w.lm_head, self.k_caches, self.v_caches, w.n_heads, w.eps, w.window)


def warm_up(model: BytePredictor) -> None:
    """Compile (or load from Numba's disk cache) the step and the frequencies, so that a first
    compression does not wait for it."""
    step = DeterministicStep(model, batch_size=1, max_positions=1)
    byte_frequencies(step(np.zeros(1, np.int64), 0), 2**24)
