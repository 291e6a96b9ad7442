"""Model configuration: one dataclass, named presets. Imports no torch, so tools (the CLI's
`info`, the app, the corpus builder) can read a checkpoint's config without loading a model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from omnibyte.errors import OmniByteError
from omnibyte.vocab import VOCAB_SIZE

__all__ = ["ModelConfig", "PRESETS"]


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    # 1 = multi-query, fewer than n_heads = grouped-query, n_heads = plain multi-head
    n_kv_heads: int = 2
    max_seq_len: int = 4096
    # SwiGLU hidden width; None = 8/3 * d_model rounded up to a multiple of 64 (the Llama rule)
    mlp_hidden: int | None = None
    # 256 byte values plus the control tokens of omnibyte.vocab
    vocab_size: int = VOCAB_SIZE
    rope_base: float = 10_000.0
    norm_eps: float = 1e-5
    # flat model: each token attends to at most this many tokens (itself included); None = all
    attention_window: int | None = None
    # > 1: the patched model. d_model, n_layers, n_heads, n_kv_heads and mlp_hidden then size a
    # global transformer over patches of patch_size bytes, and the local_* fields a small local
    # one that writes each patch byte by byte (model/patched.py)
    patch_size: int = 1
    local_d_model: int = 128
    local_n_layers: int = 2
    local_n_heads: int = 4
    # a second output over the 256 byte values that knows they are numbers (model/transformer.py,
    # ValueHead): a trial for pixels and samples, where a value's neighbours are likely too
    value_head: bool = False

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "n_kv_heads", "max_seq_len", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OmniByteError(f"config: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise OmniByteError(f"config: d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise OmniByteError(
                f"config: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )
        if self.head_dim % 2:
            raise OmniByteError(f"config: head_dim {self.head_dim} must be even for rotary embeddings")
        if self.vocab_size < VOCAB_SIZE:
            raise OmniByteError(f"config: vocab_size must be at least {VOCAB_SIZE} (bytes + control tokens)")
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", -(-(8 * self.d_model // 3) // 64) * 64)
        elif not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 1:
            raise OmniByteError(f"config: mlp_hidden must be a positive integer, got {self.mlp_hidden!r}")
        if self.rope_base <= 1 or self.norm_eps <= 0:
            raise OmniByteError("config: rope_base must be > 1 and norm_eps > 0")
        for name in ("patch_size", "local_d_model", "local_n_layers", "local_n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OmniByteError(f"config: {name} must be a positive integer, got {value!r}")
        if self.attention_window is not None and (not isinstance(self.attention_window, int)
                                                  or self.attention_window < 1):
            raise OmniByteError(f"config: attention_window must be a positive integer or null, "
                                f"got {self.attention_window!r}")
        if not isinstance(self.value_head, bool) or (self.value_head and self.patch_size > 1):
            raise OmniByteError(f"config: value_head must be true or false (and false for a patched model), "
                                f"got {self.value_head!r}")
        if self.patch_size > 1 and (self.max_seq_len % self.patch_size or self.local_d_model % self.local_n_heads
                                    or (self.local_d_model // self.local_n_heads) % 2):
            raise OmniByteError("config: a patched model needs max_seq_len divisible by patch_size and an even "
                                "local head size")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_cache_bytes_per_token(self) -> int:
        """Bytes of KV cache one token costs in float32 (keys and values, every layer)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * 4

    @property
    def local_mlp_hidden(self) -> int:
        return -(-(8 * self.local_d_model // 3) // 64) * 64

    @property
    def parameter_count(self) -> int:
        """Parameters of the model this config builds (counted without torch)."""

        def block(d: int, heads: int, kv_heads: int, hidden: int) -> int:
            h = d // heads
            attention = d * (d + 2 * kv_heads * h) + d * d + 2 * h  # fused qkv, output, q/k norms
            return attention + 3 * d * hidden + 2 * d  # gate, up, down; two RMSNorms

        d = self.d_model
        core = self.n_layers * block(d, self.n_heads, self.n_kv_heads, self.mlp_hidden) + d  # + final norm
        if self.patch_size == 1:
            return 2 * self.vocab_size * d + core + (3 * d + 3 if self.value_head else 0)
        ld, p = self.local_d_model, self.patch_size
        local = self.local_n_layers * block(ld, self.local_n_heads, self.local_n_heads, self.local_mlp_hidden)
        # byte embedding and head, patch in/out projections, the two start vectors, the local norm
        return 2 * self.vocab_size * ld + 2 * p * ld * d + d + ld + core + local + ld

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in PRESETS:
            raise OmniByteError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        if not isinstance(data, dict):
            raise OmniByteError("config: expected a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OmniByteError(f"config: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise OmniByteError(f"config: {exc}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OmniByteError(f"checkpoint config not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OmniByteError(f"checkpoint config {path} is not readable JSON: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        # the fields added for the architecture trials are written only when set, so a flat
        # model's config.json (and the model fingerprint of files it compressed) stay as they were
        defaults = {f.name: f.default for f in fields(self) if f.name in _LATER_FIELDS}
        return {k: v for k, v in asdict(self).items() if k not in defaults or v != defaults[k]}


_LATER_FIELDS = ("attention_window", "patch_size", "local_d_model", "local_n_layers", "local_n_heads", "value_head")


PRESETS: dict[str, dict[str, Any]] = {
    # The published BytePredictor architecture. Its MLP width is not published; 2816 is the
    # Llama rule (8/3 * 1024 rounded up to a multiple of 256).
    "reference": dict(d_model=1024, n_layers=12, n_heads=32, n_kv_heads=8, max_seq_len=8192, mlp_hidden=2816),
    # What the demo runs on 2 CPU cores: ~3 M parameters, a context that holds a caption plus
    # a whole 3,126-byte image or 4,044-byte sound (4,075 tokens with its caption).
    "demo": dict(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=4096, mlp_hidden=768),
    # The architecture trials (docs/architecture-trials.md): the demo model with each token
    # attending to its last 256 tokens; and patched models of about the demo's size in bytes
    # shipped, a global model over patches of 8 or 4 bytes and a local one inside each.
    "demo-local": dict(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=4096, mlp_hidden=768,
                       attention_window=256),
    # the demo model with the value head (a trial: docs/architecture-trials.md)
    "demo-value": dict(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=4096, mlp_hidden=768,
                       value_head=True),
    "patch8": dict(d_model=320, n_layers=3, n_heads=8, n_kv_heads=2, max_seq_len=4096, mlp_hidden=960,
                   patch_size=8, local_d_model=128, local_n_layers=2, local_n_heads=4),
    "patch4": dict(d_model=320, n_layers=3, n_heads=8, n_kv_heads=2, max_seq_len=4096, mlp_hidden=960,
                   patch_size=4, local_d_model=128, local_n_layers=2, local_n_heads=4),
    # For tests: builds and runs in milliseconds.
    "tiny": dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, mlp_hidden=64),
    "tiny-value": dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, mlp_hidden=64,
                       value_head=True),
    "tiny-patched": dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, mlp_hidden=64,
                         patch_size=4, local_d_model=16, local_n_layers=1, local_n_heads=2),
}
