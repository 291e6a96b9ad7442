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
    "BytePredictor": ".model.transformer",
    "ModelConfig": ".model.config",
    "load_model": ".model.checkpoints",
    "SamplingParams": ".generation.generate",
    "stream_generate": ".generation.generate",
    "ModalityDetector": ".detector",
    "Segment": ".detector",
    "compress_bytes": ".tools.compress",
    "decompress_bytes": ".tools.compress",
    "find_anomalies": ".tools.anomaly",
    "OmniByteError": ".errors",
}

if TYPE_CHECKING:
    from omnibyte.detector import ModalityDetector, Segment
    from omnibyte.errors import OmniByteError
    from omnibyte.generation.generate import SamplingParams, stream_generate
    from omnibyte.model.checkpoints import load_model
    from omnibyte.model.config import ModelConfig
    from omnibyte.model.transformer import BytePredictor
    from omnibyte.tools.anomaly import find_anomalies
    from omnibyte.tools.compress import compress_bytes, decompress_bytes


def __getattr__(name: str) -> Any:
    # PEP 562: the module holding `name` is imported the first time it is asked for
    if name not in _HOMES:
        raise AttributeError(f"module 'omnibyte' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
