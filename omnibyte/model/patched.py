"""The patched BytePredictor: a global transformer over patches of bytes and a local one inside
each patch (the layout of MEGABYTE and bGPT), built from the flat model's blocks.

    bytes  b0 b1 ... b7 | b8 ... b15 | ...          (patch_size P = 8)
    global: one position per patch; patch k reads the bytes of patches before it
            (a learned start vector stands in front of patch 0)
    local:  inside patch k, position j reads the global output for patch k and byte j - 1
            (a learned start vector at j = 0) and predicts byte j

Why: the global model runs once per P bytes, so at the flat model's cost per byte it can be
several times larger, and attention over a 4,096-byte context is attention over 512 patches.

It keeps the flat model's interface for what the trials need: `forward(idx)` gives, for each
position t of idx (B, T), the logits of token t + 1, so `score_bytes`, evaluation and training
run it unchanged. Not yet: a KV cache (generation), per-document attention in packed training
windows (attention crosses documents, as in MEGABYTE), the compiled and deterministic steps.
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
        """Logits (B, T, vocab) of the token after each position of idx (B, T), as the flat model's."""
        if start_pos is not None:
            raise OmniByteError("the patched model has no KV cache yet: it scores and trains, it does not generate")
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

    def setup_kv_cache(self, *args, **kwargs) -> None:
        raise OmniByteError("the patched model has no KV cache yet: it scores and trains, it does not generate")
