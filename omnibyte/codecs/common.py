"""What every codec shares: the result of a conversion, the upload size cap and the grey that
stands in for missing pixels."""

from __future__ import annotations

from dataclasses import dataclass

from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

__all__ = ["NativeBytes", "MAX_UPLOAD_BYTES", "NEUTRAL_GREY", "check_upload"]

# Uploads larger than this (50 MiB) are refused before any parsing: every native format is a few
# kilobytes, so nothing a demo needs is that big, and decoders never see hostile sizes.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# Missing pixels (a truncated image or video frame) are drawn mid-grey, which reads as "no data"
# without suggesting any content.
NEUTRAL_GREY = 128


@dataclass(frozen=True)
class NativeBytes:
    """An upload converted to its modality's native format.

    `notes` say, one line each, what was kept and what was changed on the way (original size,
    crop, resampling, encoding fallbacks), so the CLI and the app can show them to the user.
    """

    modality: Modality
    data: bytes
    notes: tuple[str, ...] = ()


def check_upload(data: bytes, what: str) -> bytes:
    """`data` as bytes, or an OmniByteError if it is empty or larger than the cap."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OmniByteError(f"{what} must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise OmniByteError(f"the {what} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise OmniByteError(f"the {what} is {len(data):,} bytes; uploads are limited to {MAX_UPLOAD_BYTES:,} bytes "
                            f"({MAX_UPLOAD_BYTES // 2**20} MiB)")
    return data
