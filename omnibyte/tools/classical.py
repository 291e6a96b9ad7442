"""What the everyday compressors make of the same bytes: the yardstick the model is held to.

General-purpose coders for every file (gzip -9 and xz -9 from the standard library, zstd -19
when the zstandard package is installed), and the specialists for their modality: an optimised
PNG of a picture's pixels and FLAC of a sound's samples. The app, the evaluation and the
compression benchmark all size files here, so their tables agree.
"""

from __future__ import annotations

import gzip
import io
import lzma

import numpy as np

from omnibyte.modality import Modality

__all__ = ["general_sizes", "png_size", "flac_size", "classical_sizes"]


def general_sizes(data: bytes) -> dict[str, int]:
    """gzip -9, xz -9, and zstd -19 when zstandard is installed, in bytes."""
    sizes = {"gzip -9": len(gzip.compress(data, 9, mtime=0)), "xz -9": len(lzma.compress(data, preset=9))}
    try:
        import zstandard
    except ImportError:
        return sizes
    sizes["zstd -19"] = len(zstandard.ZstdCompressor(level=19).compress(data))
    return sizes


def png_size(pixels: np.ndarray) -> int:
    """The pixels (H, W, 3 uint8) as an optimised PNG, in bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return len(buffer.getvalue())


def flac_size(samples: np.ndarray, sample_rate: int) -> int:
    """Unsigned 8-bit samples as FLAC, in bytes."""
    import soundfile as sf

    # FLAC has no unsigned 8-bit: centre on 0 and store signed 8-bit
    signed = (samples.astype(np.int16) - 128) * 256
    buffer = io.BytesIO()
    sf.write(buffer, signed, sample_rate, format="FLAC", subtype="PCM_S8")
    return len(buffer.getvalue())


def classical_sizes(data: bytes, modality: Modality | str | None = None) -> dict[str, int]:
    """The general coders' sizes, plus "png" for a native picture or "flac" for a native sound."""
    from omnibyte.codecs import decode_audio, decode_image

    sizes = general_sizes(data)
    if modality is not None and Modality(modality) is Modality.IMAGE:
        sizes["png"] = png_size(decode_image(data).pixels)
    elif modality is not None and Modality(modality) is Modality.AUDIO:
        audio = decode_audio(data)
        sizes["flac"] = flac_size(audio.samples, audio.sample_rate)
    return sizes
