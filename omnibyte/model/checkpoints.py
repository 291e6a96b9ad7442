"""Where models come from: the shipped checkpoint in assets/, a folder the user names, or a
named preset with untrained weights (for trying the tools before a checkpoint exists)."""

from __future__ import annotations

import sys
from pathlib import Path

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import BytePredictor

__all__ = ["DEFAULT_CHECKPOINT", "load_model"]


def _shipped_checkpoint() -> Path:
    """assets/checkpoint beside the package in a checkout (or a Space); in an installed package,
    the copy `pip install` puts under the environment's share/omnibyte (pyproject's data-files)."""
    beside = Path(__file__).resolve().parents[2] / "assets" / "checkpoint"
    installed = Path(sys.prefix) / "share" / "omnibyte" / "checkpoint"
    return beside if beside.is_dir() or not installed.is_dir() else installed


DEFAULT_CHECKPOINT = _shipped_checkpoint()


def load_model(folder: str | Path | None = None, preset: str | None = None, seed: int = 0) -> BytePredictor:
    """The model in `folder` (default: the shipped checkpoint), or an untrained `preset`."""
    if folder is not None and preset is not None:
        raise OmniByteError("give either a checkpoint folder or a preset, not both")
    if preset is not None:
        import torch

        config = ModelConfig.from_name(preset)
        torch.manual_seed(seed)
        return BytePredictor.build(config).eval()
    folder = Path(folder) if folder is not None else DEFAULT_CHECKPOINT
    if folder == DEFAULT_CHECKPOINT and not folder.is_dir():
        raise OmniByteError(
            f"no shipped checkpoint at {folder}: pass --model DIR, or --preset NAME for untrained weights"
        )
    return BytePredictor.from_pretrained(folder)
