"""BytePredictor: a decoder-only transformer over bytes, readable top to bottom.

RMSNorm -> rotary embeddings -> KV cache -> attention (any number of key/value heads, QK-norm)
-> SwiGLU MLP -> block -> model. Checkpoints are a folder with `config.json` and
`model.safetensors`; nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig

__all__ = ["BytePredictor", "KVCache", "RMSNorm", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rope_tables(head_dim: int, max_seq_len: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency), each (max_seq_len, head_dim)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # rotate-half layout, as in Llama
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, T, H, head_dim) by the angles of its positions; cos, sin are (T, head_dim)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


class KVCache(nn.Module):
    """Keys and values of every position seen so far, preallocated and updated in place.

    The buffers are non-persistent: a cache is state of one generation, never part of a
    checkpoint.
    """

    def __init__(self, batch_size: int, max_seq_len: int, n_kv_heads: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str | None = None) -> None:
        super().__init__()
        shape = (batch_size, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start_pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, n_kv_heads, T, head_dim) at start_pos; return everything up to them."""
        batch, end = k.size(0), start_pos + k.size(2)
        self.k[:batch, :, start_pos:end] = k
        self.v[:batch, :, start_pos:end] = v
        # a view of only the filled positions: attention never sees stale entries, so a
        # single new token needs no mask at all
        return self.k[:batch, :, :end], self.v[:batch, :, :end]


def local_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention in which each position sees itself and the window - 1 before it.

    The sequence is cut into blocks of `window`; each block's queries attend to their own block
    and the one before, masked to the band. That costs T x 2 x window scores instead of T x T,
    which is the point of a window on a CPU.
    """
    batch, n_heads, seq, head_dim = q.shape
    group = n_heads // k.size(1)
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    pad = (-seq) % window
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    blocks = (seq + pad) // window
    q = q.view(batch, n_heads, blocks, window, head_dim)
    k = k.view(batch, n_heads, blocks, window, head_dim)
    v = v.view(batch, n_heads, blocks, window, head_dim)
    before = (torch.zeros_like(k[:, :, :1]), torch.zeros_like(v[:, :, :1]))
    k = torch.cat([torch.cat([before[0], k[:, :, :-1]], dim=2), k], dim=3)  # (B, H, blocks, 2W, hd)
    v = torch.cat([torch.cat([before[1], v[:, :, :-1]], dim=2), v], dim=3)
    row = torch.arange(window, device=q.device)[:, None]  # query i of its block
    col = torch.arange(2 * window, device=q.device)[None, :]  # key m of the previous block and this one
    band = (col <= row + window) & (col > row)  # the key is at or before the query, within the window
    first = band & (col >= window)  # the first block has no block before it
    mask = torch.stack([first] + [band] * (blocks - 1))  # (blocks, W, 2W)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return y.reshape(batch, n_heads, blocks * window, head_dim)[:, :, :seq]


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      is_causal: bool, segments: list[list[tuple[int, int]]] | None = None,
                      window: int | None = None) -> torch.Tensor:
    """Attention of q (B, n_heads, T, hd) over k, v (B, n_kv_heads, S, hd) -> (B, n_heads, T, hd).

    Query head h reads key/value head h // group (the layout of Llama's repeat_kv). `segments`
    gives, per batch row, the [start, end) spans of its documents: each attends causally within
    itself only. `window` limits what each query sees to the `window` most recent positions.
    """
    batch, n_heads, seq, head_dim = q.shape
    n_kv_heads = k.size(1)
    group = n_heads // n_kv_heads
    if window is not None and mask is None and (is_causal or segments is not None):
        spans = segments or [[(0, seq)]] * batch
        return torch.cat([torch.cat([local_causal_attention(q[b:b + 1, :, s:e], k[b:b + 1, :, s:e],
                                                            v[b:b + 1, :, s:e], window)
                                     if e - s > window else
                                     F.scaled_dot_product_attention(q[b:b + 1, :, s:e], k[b:b + 1, :, s:e],
                                                                    v[b:b + 1, :, s:e], is_causal=True,
                                                                    enable_gqa=group > 1)
                                     for s, e in row], dim=2) for b, row in enumerate(spans)], dim=0)
    if window is not None and k.size(2) > window and seq == 1:  # decoding: the last `window` cached positions
        k, v = k[:, :, -window:], v[:, :, -window:]
    if segments is not None:
        # A causal kernel per document instead of one call with a block-diagonal mask: the
        # masked call falls back to materialising T x T scores and runs at half the speed.
        rows = [torch.cat([F.scaled_dot_product_attention(q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e],
                                                          is_causal=True, enable_gqa=group > 1)
                           for s, e in spans], dim=2)
                for b, spans in enumerate(segments)]
        return torch.cat(rows, dim=0)
    if seq == 1 and mask is None and not is_causal:
        # Decoding one token: fold each group of query heads onto its shared K/V head as `group`
        # queries, instead of repeating K and V, so K/V are read once per group.
        y = F.scaled_dot_product_attention(q.view(batch, n_kv_heads, group, head_dim), k, v)
        return y.view(batch, n_heads, 1, head_dim)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=group > 1)


def document_spans(doc_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row of doc_ids (B, T), the [start, end) spans over which the id stays the same."""
    spans = []
    for row in doc_ids.cpu():
        starts = [0] + (torch.nonzero(row[1:] != row[:-1]).flatten() + 1).tolist()
        spans.append(list(zip(starts, starts[1:] + [row.numel()])))
    return spans


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        # q, k and v in one matmul: one kernel launch instead of three per decoding step
        self.qkv = nn.Linear(config.d_model, (config.n_heads + 2 * config.n_kv_heads) * config.head_dim, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)
        # QK-norm: keeps attention logits bounded however large the activations grow
        self.q_norm = RMSNorm(config.head_dim, config.norm_eps)
        self.k_norm = RMSNorm(config.head_dim, config.norm_eps)
        self.kv_cache: KVCache | None = None
        self.window = config.attention_window

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                is_causal: bool, start_pos: int | None,
                segments: list[list[tuple[int, int]]] | None = None) -> torch.Tensor:
        batch, seq, d_model = x.shape
        qkv = self.qkv(x).view(batch, seq, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        q, k, v = qkv.split([self.n_heads, self.n_kv_heads, self.n_kv_heads], dim=2)
        q = apply_rotary(self.q_norm(q), cos, sin).transpose(1, 2)  # (B, n_heads, T, hd)
        k = apply_rotary(self.k_norm(k), cos, sin).transpose(1, 2)  # (B, n_kv_heads, T, hd)
        v = v.transpose(1, 2)  # (B, n_kv_heads, T, hd)
        if start_pos is not None:
            assert self.kv_cache is not None, "start_pos given but no KV cache set up"
            k, v = self.kv_cache.update(start_pos, k, v)  # (B, n_kv_heads, S, hd)
        y = grouped_attention(q, k, v, mask, is_causal, segments, self.window)  # (B, n_heads, T, hd)
        return self.out(y.transpose(1, 2).reshape(batch, seq, d_model))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), gate and up in one matmul."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.mlp_hidden, bias=False)
        self.down = nn.Linear(config.mlp_hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                is_causal: bool, start_pos: int | None,
                segments: list[list[tuple[int, int]]] | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, is_causal, start_pos, segments)
        return x + self.mlp(self.mlp_norm(x))


class ValueHead(nn.Module):
    """Adds to the 256 byte logits a bump centred on a value the model predicts:
    -w * sqrt(1 + ((v - centre) / scale)**2), with centre, scale and weight w >= 0 from the same
    hidden state.

    A softmax over 256 unrelated logits has to learn from data that 127 and 128 are neighbours;
    for pixels and audio samples they are, and a photo's smooth regions or a quiet sound put
    nearly all the probability on a few neighbouring values (PixelCNN++'s logistic outputs
    build on the same fact). The bump is smooth at its centre and falls linearly, like a
    logistic's log-density, but takes only + - * / sqrt and exp, which the coder's deterministic
    step computes bit for bit on every machine. The weight lets the model turn it on where bytes
    are numbers and off in text; it starts almost off, so trained weights continue from what they
    knew."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, 3)  # centre, log scale, log weight (before their squashing)
        nn.init.normal_(self.proj.weight, std=0.02)
        with torch.no_grad():
            self.proj.bias.copy_(torch.tensor([0.0, 0.0, -4.0]))  # centre 127.5, scale 8, weight 0.018
        self.register_buffer("values", torch.arange(256, dtype=torch.float32), persistent=False)

    def forward(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        centre, log_scale, log_weight = self.proj(hidden).float().unbind(-1)
        centre = 127.5 + 128.0 * torch.tanh(centre)
        scale = 8.0 * torch.exp(log_scale.clamp(-6.0, 3.0))
        weight = torch.exp(log_weight.clamp(-10.0, 3.0))
        z = (self.values - centre[..., None]) / scale[..., None]
        bump = -weight[..., None] * torch.sqrt(1.0 + z * z)
        return torch.cat([logits[..., :256] + bump, logits[..., 256:]], dim=-1)


class BytePredictor(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.value_head = ValueHead(config.d_model) if config.value_head else None
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by depth
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # --- running -------------------------------------------------------------------------------

    def forward(self, idx: torch.Tensor, start_pos: int | None = None, doc_ids: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab) of the token after each position of idx (B, T).

        Without `start_pos` the whole sequence is attended causally and no cache is touched.
        With it, idx holds positions start_pos.. and attends to the KV cache as well.
        `doc_ids` (B, T) masks attention at document boundaries in packed training sequences:
        a token sees only earlier tokens with the same id. `last_only` returns the last
        position's logits, all that generation needs.
        """
        batch, seq = idx.shape
        first = 0 if start_pos is None else start_pos
        if first + seq > self.config.max_seq_len:
            raise OmniByteError(
                f"sequence of {first + seq} tokens exceeds the model's context of {self.config.max_seq_len}"
            )
        cos = self.rope_cos[first:first + seq]
        sin = self.rope_sin[first:first + seq]
        mask, is_causal, segments = None, False, None
        if start_pos is None:
            if doc_ids is None:
                is_causal = True
            else:
                segments = document_spans(doc_ids)
        else:
            if self.blocks[0].attn.kv_cache is None:
                raise OmniByteError("start_pos needs a KV cache: call setup_kv_cache() first")
            if seq > 1:  # the new tokens see every cached position and the new ones before them
                query_pos = torch.arange(first, first + seq, device=idx.device)
                key_pos = torch.arange(first + seq, device=idx.device)[None, :]
                mask = query_pos[:, None] >= key_pos  # (T, S)
                if self.config.attention_window is not None:
                    mask &= query_pos[:, None] - key_pos < self.config.attention_window
        x = self.tok_embeddings(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask, is_causal, start_pos, segments)
        if last_only:
            x = x[:, -1:]
        hidden = self.norm(x)
        logits = self.lm_head(hidden).float()
        return logits if self.value_head is None else self.value_head(hidden, logits)

    def setup_kv_cache(self, batch_size: int = 1, max_seq_len: int | None = None,
                       dtype: torch.dtype | None = None) -> None:
        """Preallocate a KV cache for generation (replaces any earlier one)."""
        max_seq_len = max_seq_len or self.config.max_seq_len
        dtype = dtype or self.tok_embeddings.weight.dtype
        device = self.tok_embeddings.weight.device
        for block in self.blocks:
            block.attn.kv_cache = KVCache(batch_size, max_seq_len, self.config.n_kv_heads,
                                          self.config.head_dim, dtype, device)

    def clear_kv_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fork(self) -> BytePredictor:
        """A copy over the very same parameter tensors with its own modules, so its own KV cache:
        another stream (a web visitor, guidance's unconditional pass) at no cost in weights."""
        shared = {id(p): p for p in self.parameters()}
        return copy.deepcopy(self, memo=shared)

    # --- checkpoints ---------------------------------------------------------------------------

    @staticmethod
    def build(config: ModelConfig) -> BytePredictor:
        """The model a config describes: flat, or patched when config.patch_size > 1."""
        if config.patch_size > 1:
            from omnibyte.model.patched import PatchedBytePredictor

            return PatchedBytePredictor(config)
        return BytePredictor(config)

    def save_pretrained(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write config.json and model.safetensors (optionally cast, e.g. to float16)."""
        import json

        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: (t.to(dtype) if dtype else t).detach().contiguous().cpu()
                 for name, t in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> BytePredictor:
        """Rebuild the model from its folder's config.json and load model.safetensors into it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if not folder.is_dir():
            raise OmniByteError(f"checkpoint folder not found: {folder}")
        config = ModelConfig.from_json_file(folder / CONFIG_FILE)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise OmniByteError(f"checkpoint weights not found: {weights}")
        try:
            state = load_file(str(weights), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise OmniByteError(f"checkpoint weights {weights} are corrupt: {exc}") from None
        model = cls.build(config)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise OmniByteError(
                f"checkpoint {weights} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        for name, tensor in state.items():
            if tensor.shape != expected[name].shape:
                raise OmniByteError(
                    f"checkpoint {weights}: {name} has shape {tuple(tensor.shape)}, "
                    f"config says {tuple(expected[name].shape)}"
                )
            if not tensor.is_floating_point():
                raise OmniByteError(f"checkpoint {weights}: {name} is not a floating-point tensor")
        model.load_state_dict(state)
        return model.to(device=device, dtype=dtype).eval()
