"""OmniByte: one byte-level transformer that continues text, images, audio and video.

The public API. Names that need PyTorch are imported on first use, so `from omnibyte import
ModalityDetector` (or the codecs) never loads torch:

    from omnibyte import load_model, stream_generate, SamplingParams, ModalityDetector
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BytePredictor",
    "ModelConfig",
    "load_model",
    "SamplingParams",
    "stream_generate",
    "ModalityDetector",
    "Segment",
    "compress_bytes",
    "decompress_bytes",
    "find_anomalies",
    "OmniByteError",
]

# name -> the module that defines it (relative to this package)
_HOMES = {
    "BytePredictor": ".model",
    "ModelConfig": ".config",
    "load_model": ".checkpoints",
    "SamplingParams": ".generate",
    "stream_generate": ".generate",
    "ModalityDetector": ".detector",
    "Segment": ".detector",
    "compress_bytes": ".compress",
    "decompress_bytes": ".compress",
    "find_anomalies": ".anomaly",
    "OmniByteError": ".errors",
}

if TYPE_CHECKING:
    from .anomaly import find_anomalies
    from .checkpoints import load_model
    from .compress import compress_bytes, decompress_bytes
    from .config import ModelConfig
    from .detector import ModalityDetector, Segment
    from .errors import OmniByteError
    from .generate import SamplingParams, stream_generate
    from .model import BytePredictor


def __getattr__(name: str) -> Any:
    # PEP 562: the module holding `name` is imported the first time it is asked for
    if name not in _HOMES:
        raise AttributeError(f"module 'omnibyte' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
