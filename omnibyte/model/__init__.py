"""The model: BytePredictor and its configuration, checkpoints, and two fast CPU decoding steps.

- `config`: `ModelConfig`, a torch-free dataclass with named presets.
- `transformer`: `BytePredictor`, the transformer itself, readable top to bottom.
- `checkpoints`: `load_model` (the shipped checkpoint, a folder, or a preset).
- `compiled_decode`: the one-token step compiled with Numba, for generation.
- `deterministic`: the bit-exact step the compressor codes with, the same on every CPU.

Importing this package does not import torch (the config stays torch-free); the names below
are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BytePredictor", "ModelConfig", "load_model"]

_HOMES = {"BytePredictor": ".transformer", "ModelConfig": ".config", "load_model": ".checkpoints"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'omnibyte.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
