"""The patched BytePredictor: a global transformer over patches of bytes and a local one inside
each patch (the layout of MEGABYTE and bGPT), built from the flat model's blocks.

    bytes  b0 b1 ... b7 | b8 ... b15 | ...          (patch_size P = 8)
    global: one position per patch; patch k reads the bytes of patches before it
            (a learned start vector stands in front of patch 0)
    local:  inside patch k, position j reads the global output for patch k and byte j - 1
            (a learned start vector at j = 0) and predicts byte j

Why: the global model runs once per P bytes, so at the flat model's cost per byte it can be
several times larger, and attention over a 4,096-byte context is attention over 512 patches.

It keeps the flat model's interface: `forward(idx)` gives, for each position t of idx (B, T), the
logits of token t + 1, so `score_bytes`, evaluation and training run it unchanged; with a cache
(`setup_kv_cache`, then `forward(tokens, start_pos=...)` in order) it generates through
`stream_generate`: the global model steps once per finished patch, with a KV cache of its own,
and the local model reruns over the few bytes of the patch being written. Not yet: per-document
attention in packed training windows (attention crosses documents, as in MEGABYTE), and the
compiled and deterministic steps (so no compression).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import Block, BytePredictor, RMSNorm, rope_tables

__all__ = ["PatchedBytePredictor"]


class PatchedBytePredictor(BytePredictor):
    def __init__(self, config: ModelConfig) -> None:
        nn.Module.__init__(self)  # the layers are its own; the checkpoint methods are BytePredictor's
        if config.patch_size < 2:
            raise OmniByteError("the patched model needs patch_size >= 2")
        self.config = config
        p, d, ld = config.patch_size, config.d_model, config.local_d_model
        local = ModelConfig(d_model=ld, n_layers=config.local_n_layers, n_heads=config.local_n_heads,
                            n_kv_heads=config.local_n_heads, max_seq_len=p, mlp_hidden=config.local_mlp_hidden,
                            vocab_size=config.vocab_size, rope_base=config.rope_base, norm_eps=config.norm_eps)
        self.tok_embeddings = nn.Embedding(config.vocab_size, ld)  # bytes, for both levels
        self.patch_in = nn.Linear(p * ld, d, bias=False)  # a patch's byte embeddings -> one global input
        self.global_start = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.global_norm = RMSNorm(d, config.norm_eps)
        self.patch_out = nn.Linear(d, p * ld, bias=False)  # one global output -> a vector per local position
        self.local_start = nn.Parameter(torch.zeros(ld))
        self.local_blocks = nn.ModuleList(Block(local) for _ in range(local.n_layers))
        self.norm = RMSNorm(ld, config.norm_eps)
        self.lm_head = nn.Linear(ld, config.vocab_size, bias=False)
        patches = config.max_seq_len // p + 1  # the sequence gains one position (see forward)
        for name, (dim, length) in {"global": (config.head_dim, patches), "local": (local.head_dim, p)}.items():
            cos, sin = rope_tables(dim, length, config.rope_base)
            self.register_buffer(f"{name}_cos", cos, persistent=False)
            self.register_buffer(f"{name}_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                layers = config.n_layers if name.startswith("blocks") else local.n_layers
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    def forward(self, idx: torch.Tensor, start_pos: int | None = None, doc_ids: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab) of the token after each position of idx (B, T), as the flat model's.
        With `start_pos` (after setup_kv_cache), idx continues what was fed before, from start_pos."""
        if start_pos is not None:
            return self._cached(idx, start_pos, last_only)
        batch, seq = idx.shape
        if seq > self.config.max_seq_len:
            raise OmniByteError(f"sequence of {seq} tokens exceeds the model's context of {self.config.max_seq_len}")
        p, ld = self.config.patch_size, self.config.local_d_model
        # the model predicts every token of the stream from the ones before it, the first from the
        # start vectors alone; the logits after position t are its prediction of position t + 1,
        # so one position is added at the end (its value never matters: nothing reads it) and the
        # stream is padded to whole patches
        length = seq + 1
        pad = (-length) % p
        stream = F.pad(idx, (0, 1 + pad))
        patches = (length + pad) // p
        emb = self.tok_embeddings(stream)  # (B, N*P, ld)
        patch_emb = self.patch_in(emb.view(batch, patches, p * ld))  # (B, N, d)
        g = torch.cat([self.global_start.expand(batch, 1, -1), patch_emb[:, :-1]], dim=1)  # patch k reads < k
        cos, sin = self.global_cos[:patches], self.global_sin[:patches]
        for block in self.blocks:
            g = block(g, cos, sin, None, True, None)
        g = self.patch_out(self.global_norm(g)).view(batch * patches, p, ld)
        # inside patch k, position j reads byte j - 1 of the patch (the start vector at j = 0)
        inside = emb.view(batch * patches, p, ld)
        previous = torch.cat([self.local_start.expand(batch * patches, 1, -1), inside[:, :-1]], dim=1)
        x = g + previous
        cos, sin = self.local_cos, self.local_sin
        for block in self.local_blocks:
            x = block(x, cos, sin, None, True, None)
        x = x.view(batch, patches * p, ld)[:, 1:length]  # predictions of positions 1..seq
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x)).float()

    # --- generation: a KV cache for the global model, the patch being written for the local one ---

    def setup_kv_cache(self, batch_size: int = 1, max_seq_len: int | None = None,
                       dtype: torch.dtype | None = None) -> None:
        from omnibyte.model.transformer import KVCache

        config = self.config
        max_seq_len = max_seq_len or config.max_seq_len
        weight = self.tok_embeddings.weight
        patches = max_seq_len // config.patch_size + 2
        for block in self.blocks:
            block.attn.kv_cache = KVCache(batch_size, patches, config.n_kv_heads, config.head_dim,
                                          dtype or weight.dtype, weight.device)
        self._history = torch.zeros(batch_size, max_seq_len + config.patch_size, dtype=torch.long,
                                    device=weight.device)
        self._fed = 0  # tokens fed so far
        self._global_done = 0  # global positions in the cache (position 0: the start vector)
        self._global_out: torch.Tensor | None = None  # (B, P, ld): the local inputs of the current patch

    def clear_kv_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None
        self._history = self._global_out = None

    def _cached(self, idx: torch.Tensor, start_pos: int, last_only: bool) -> torch.Tensor:
        if getattr(self, "_history", None) is None:
            raise OmniByteError("start_pos needs a KV cache: call setup_kv_cache() first")
        if start_pos == 0:  # a new stream (or the context slid): forget what was fed
            self.setup_kv_cache(self._history.size(0), self._history.size(1) - self.config.patch_size,
                                self.blocks[0].attn.kv_cache.k.dtype)
        if start_pos != self._fed:
            raise OmniByteError(f"the patched model is fed in order: expected position {self._fed}, got {start_pos}")
        batch, seq = idx.shape
        end = start_pos + seq
        if end > self._history.size(1) - self.config.patch_size:
            raise OmniByteError(f"sequence of {end} tokens exceeds the cache of "
                                f"{self._history.size(1) - self.config.patch_size}")
        self._history[:batch, start_pos:end] = idx
        self._fed = end
        self._advance_global(batch)
        if seq > 1 and not last_only:  # every position's logits: the uncached pass over the whole history
            return self.forward(self._history[:batch, :end])[:, start_pos:]
        return self._local_logits(batch)[:, None]

    def _advance_global(self, batch: int) -> None:
        """Run the global model over the patches finished since it last ran, up to the one whose
        output the next token needs: patch (fed // P) reads patches 0 .. fed // P - 1."""
        p, ld = self.config.patch_size, self.config.local_d_model
        needed = self._fed // p + 1  # global positions 0 .. fed // P
        if needed <= self._global_done:
            return
        first = self._global_done
        inputs = []
        for position in range(first, needed):
            if position == 0:
                inputs.append(self.global_start.expand(batch, 1, -1))
            else:
                patch = self._history[:batch, (position - 1) * p:position * p]
                inputs.append(self.patch_in(self.tok_embeddings(patch).reshape(batch, 1, p * ld)))
        g = torch.cat(inputs, dim=1)
        count = needed - first
        cos, sin = self.global_cos[first:needed], self.global_sin[first:needed]
        mask = None
        if count > 1:
            query = torch.arange(first, needed, device=g.device)
            mask = query[:, None] >= torch.arange(needed, device=g.device)[None, :]
        for block in self.blocks:
            g = block(g, cos, sin, mask, False, first)
        self._global_done = needed
        self._global_out = self.patch_out(self.global_norm(g[:, -1:])).view(batch, p, ld)

    def _local_logits(self, batch: int) -> torch.Tensor:
        """Logits (B, vocab) of the next token: the local model over the patch being written."""
        p = self.config.patch_size
        j = self._fed % p  # the next token's place in its patch
        start = self._fed - j
        previous = [self.local_start.expand(batch, 1, -1)]
        if j:
            previous.append(self.tok_embeddings(self._history[:batch, start:self._fed]))
        x = self._global_out[:, :j + 1] + torch.cat(previous, dim=1)
        cos, sin = self.local_cos[:j + 1], self.local_sin[:j + 1]
        for block in self.local_blocks:
            x = block(x, cos, sin, None, True, None)
        return self.lm_head(self.norm(x[:, -1])).float()
