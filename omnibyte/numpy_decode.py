"""One stream's decoding step in NumPy, built from a BytePredictor's weights: a speed-up applied
from outside the model, like compiling or quantising it.

    step = NumpyDecodeStep(model)          # after model.setup_kv_cache(1) and a prefill
    logits = step(token_id, pos)           # (vocab,) float32, as decode_one would give

Why it exists: decoding one byte is ~17 matrix-vector products on a 3 M-parameter model plus a
few dozen tiny element-wise operations. On a 2-core CPU PyTorch spends most of that step in
per-operator dispatch (about 4 us each, some 250 of them) and in MKL's matrix-vector kernels,
which run at half the speed of NumPy's OpenBLAS on this machine's AMD CPU. The same arithmetic in
NumPy takes under half the time (benchmarks/decode.py: 589 against 273 bytes/s). The step reads and writes the
model's own KV cache buffers (shared memory, no copies), so PyTorch still does the prefill and
the sliding-window refill, and the two paths can be mixed freely.

The arithmetic is the model's, reordered where that is exact in real numbers: RMSNorm gains are
folded into the matrix that follows them, the 1/sqrt(head_dim) attention scale into the query
norm's gain, and rotate-half RoPE becomes a gather. Results agree with `decode_one` to float32
rounding (tests/test_numpy_decode.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from scipy.special import expit
from threadpoolctl import ThreadpoolController

from .errors import OmniByteError
from .model import BytePredictor

__all__ = ["NumpyDecodeStep", "numpy_decode_supported"]

_blas_threads: ThreadpoolController | None = None


def _one_blas_thread():
    """A context in which NumPy's BLAS runs on the calling thread only. A matrix-vector product
    this small gains nothing from a second thread, and OpenBLAS's waiting workers then compete
    with PyTorch's for the same two cores, which made whole generations markedly slower here."""
    global _blas_threads
    if _blas_threads is None:  # scanning the loaded libraries takes milliseconds: once
        _blas_threads = ThreadpoolController()
    return _blas_threads.limit(limits=1, user_api="blas")


def numpy_decode_supported(model: BytePredictor, batch_size: int) -> bool:
    """The NumPy step handles one float32 stream on a CPU of a plain BytePredictor; a batch, a GPU,
    another dtype, a replaced output head or a forward hook (tests steer and count with them)
    stays in PyTorch."""
    weight = model.tok_embeddings.weight
    plain = type(model.lm_head) is nn.Linear and not any(m._forward_hooks or m._forward_pre_hooks
                                                         for m in model.modules())
    return batch_size == 1 and weight.device.type == "cpu" and weight.dtype == torch.float32 and plain


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


class NumpyDecodeStep:
    """Feed one token at a position, get the next token's logits; uses the model's KV cache."""

    def __init__(self, model: BytePredictor) -> None:
        config = model.config
        if model.blocks[0].attn.kv_cache is None:
            raise OmniByteError("the NumPy decode step needs the model's KV cache: call setup_kv_cache() first")
        if not numpy_decode_supported(model, model.blocks[0].attn.kv_cache.k.size(0)):
            raise OmniByteError("the NumPy decode step runs one float32 stream on a CPU, of a plain BytePredictor")
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.group = self.n_heads // self.n_kv_heads
        self.eps, self.hidden = config.norm_eps, config.mlp_hidden
        hd, half = self.head_dim, self.head_dim // 2
        self.embedding = _array(model.tok_embeddings.weight)  # (vocab, d_model)
        # rotate_half(x) = concat(-x2, x1) = x[rotated] * sign
        self.rotated = np.concatenate([np.arange(half, hd), np.arange(half)])
        sign = np.concatenate([-np.ones(half), np.ones(half)]).astype(np.float32)
        self.cos = _array(model.rope_cos)  # (max_seq_len, head_dim)
        self.sin = _array(model.rope_sin) * sign
        self.layers = []
        for block in model.blocks:
            attn, mlp = block.attn, block.mlp
            q_gain = _array(attn.q_norm.weight) / math.sqrt(hd)  # the attention scale, folded in
            k_gain = _array(attn.k_norm.weight)
            gains = np.concatenate([np.tile(q_gain, (self.n_heads, 1)), np.tile(k_gain, (self.n_kv_heads, 1))])
            self.layers.append({
                # x_normed @ W.T * g == x_normed @ (W.T * g[:, None]): the norm's gain folded into W
                "qkv": _array(attn.qkv.weight.T * block.attn_norm.weight[:, None]),  # (d_model, (H + 2K) * hd)
                "qk_gain": gains,  # (H + K, hd)
                "qk_gain_rotated": gains[:, self.rotated],
                "out": _array(attn.out.weight.T),  # (d_model, d_model)
                "gate_up": _array(mlp.gate_up.weight.T * block.mlp_norm.weight[:, None]),  # (d_model, 2 * hidden)
                "down": _array(mlp.down.weight.T),  # (hidden, d_model)
                # the cache buffers' own memory: what PyTorch's prefill wrote, this step reads
                "k_cache": attn.kv_cache.k.numpy()[0],  # (K, S, hd)
                "v_cache": attn.kv_cache.v.numpy()[0],
            })
        self.lm_head = _array(model.lm_head.weight.T * model.norm.weight[:, None])  # (d_model, vocab)
        self.max_positions = self.layers[0]["k_cache"].shape[1]

    def _inv_rms(self, x: np.ndarray) -> np.float32:
        return np.float32(1.0 / math.sqrt(float(np.dot(x, x)) / x.size + self.eps))

    def __call__(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab,) of the token after `token`, which sits at position `pos`."""
        if not 0 <= pos < self.max_positions:
            raise OmniByteError(f"position {pos} is outside the KV cache of {self.max_positions}")
        with _one_blas_thread():
            return self._step(token, pos)

    def _step(self, token: int, pos: int) -> np.ndarray:
        H, K, G, hd = self.n_heads, self.n_kv_heads, self.group, self.head_dim
        x = self.embedding[token].copy()  # (d_model,)
        cos, sin = self.cos[pos], self.sin[pos]
        for layer in self.layers:
            qkv = (x * self._inv_rms(x)) @ layer["qkv"]  # ((H + 2K) * hd,)
            qk = qkv[:(H + K) * hd].reshape(H + K, hd)
            v = qkv[(H + K) * hd:].reshape(K, hd)
            # QK-norm, then RoPE: normed * gain * cos + rotate_half(normed * gain) * sin
            normed = qk / np.sqrt(np.einsum("hd,hd->h", qk, qk)[:, None] * (1 / hd) + self.eps)  # (H + K, hd)
            qk = normed * (layer["qk_gain"] * cos) + normed[:, self.rotated] * (layer["qk_gain_rotated"] * sin)
            k_cache, v_cache = layer["k_cache"], layer["v_cache"]
            k_cache[:, pos] = qk[H:]
            v_cache[:, pos] = v
            q = qk[:H].reshape(K, G, hd)  # query heads grouped by the K/V head they read
            # keys times queries, not queries times transposed keys: the cache is read in its
            # own layout (a transposed read makes NumPy copy it, twice as slow at 700 positions)
            scores = np.matmul(k_cache[:, :pos + 1], q.transpose(0, 2, 1))  # (K, pos + 1, G)
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
            y = np.matmul(scores.transpose(0, 2, 1), v_cache[:, :pos + 1])  # (K, G, hd)
            x += y.reshape(-1) @ layer["out"]
            gate_up = (x * self._inv_rms(x)) @ layer["gate_up"]
            gate, up = gate_up[:self.hidden], gate_up[self.hidden:]
            x += (gate * expit(gate) * up) @ layer["down"]  # SwiGLU: silu(gate) * up
        return (x * self._inv_rms(x)) @ self.lm_head
