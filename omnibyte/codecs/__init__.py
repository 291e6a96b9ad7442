"""The native byte formats the model reads and writes, and the codecs to and from them.

- text: UTF-8
- image: 32x32 24-bit BMP, 3,126 bytes
- audio: 8 kHz unsigned 8-bit mono WAV, 0.5 s, 4,044 bytes
- video: 16x16 greyscale Y4M, 8 frames at 8 fps, 2,133 bytes

`to_native` turns an upload into its native bytes (`encode_*` per modality), and refuses what it
cannot convert with an OmniByteError. `decode_native` turns native bytes, even truncated or
damaged ones such as a model writes, into something renderable, and never raises on any bytes;
each result lists the repairs it made. No torch here: tools and the app can convert files without
loading a model.
"""

from __future__ import annotations

import io
from pathlib import PurePath

import soundfile as sf

from omnibyte.codecs.audio import SAMPLE_RATE, WAV_BYTES, DecodedAudio, audio_to_wav, decode_audio, encode_audio
from omnibyte.codecs.common import MAX_UPLOAD_BYTES, NativeBytes, check_upload
from omnibyte.codecs.image import (
    BMP_BYTES,
    IMAGE_SIZE,
    MAX_IMAGE_PIXELS,
    DecodedImage,
    decode_image,
    encode_image,
    identify_image,
    image_to_png,
    pixels_to_bmp,
)
from omnibyte.codecs.text import DecodedText, decode_text, encode_text, looks_like_text
from omnibyte.codecs.video import (
    FPS,
    FRAME_COUNT,
    FRAME_SIZE,
    Y4M_BYTES,
    DecodedVideo,
    decode_video,
    encode_video,
    frames_to_y4m,
    video_to_gif,
)
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

__all__ = [
    "NativeBytes",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "IMAGE_SIZE",
    "BMP_BYTES",
    "SAMPLE_RATE",
    "WAV_BYTES",
    "FRAME_SIZE",
    "FRAME_COUNT",
    "FPS",
    "Y4M_BYTES",
    "Decoded",
    "DecodedText",
    "DecodedImage",
    "DecodedAudio",
    "DecodedVideo",
    "sniff_modality",
    "to_native",
    "decode_native",
    "encode_text",
    "decode_text",
    "encode_image",
    "decode_image",
    "image_to_png",
    "pixels_to_bmp",
    "encode_audio",
    "decode_audio",
    "audio_to_wav",
    "encode_video",
    "decode_video",
    "video_to_gif",
    "frames_to_y4m",
]

Decoded = DecodedText | DecodedImage | DecodedAudio | DecodedVideo

_ENCODERS = {
    Modality.TEXT: encode_text,
    Modality.IMAGE: encode_image,
    Modality.AUDIO: encode_audio,
    Modality.VIDEO: encode_video,
}
_DECODERS = {
    Modality.TEXT: decode_text,
    Modality.IMAGE: decode_image,
    Modality.AUDIO: decode_audio,
    Modality.VIDEO: decode_video,
}

# Only consulted when the content itself is not recognised: a `.txt` may hold legacy-encoded
# text with a few control characters, and a corrupt `.png` deserves the image reader's own error
# rather than "unsupported file type".
_SUFFIX_MODALITIES = {
    **dict.fromkeys((".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".html",
                     ".htm", ".log", ".srt", ".ini", ".cfg", ".toml", ".yaml", ".yml", ".py", ".js",
                     ".c", ".h", ".cpp", ".java", ".rs", ".go", ".sh", ".css", ".tex"), Modality.TEXT),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico"), Modality.IMAGE),
    **dict.fromkeys((".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"), Modality.AUDIO),
    **dict.fromkeys((".y4m",), Modality.VIDEO),
}


def sniff_modality(data: bytes, filename: str | None = None) -> Modality:
    """The modality of an upload, from its content first and its file name only as a fallback.

    Signatures decide first (Y4M, then images Pillow recognises, animated ones being video), then
    whether the bytes read as text, then whether libsndfile reads them as audio. Raises OmniByteError for
    anything else, and for images that are decompression bombs.
    """
    if data.startswith(b"YUV4MPEG2"):
        return Modality.VIDEO
    im = identify_image(data)
    if im is not None:
        try:
            animated = bool(getattr(im, "is_animated", False))
        except Exception:
            animated = False  # a broken second frame: let the image encoder report what is wrong
        return Modality.VIDEO if animated else Modality.IMAGE
    # text before audio: every audio format has NUL bytes in its header, so nothing audio reads
    # as text, while a UTF-16 mark (FF FE) looks to libsndfile like the start of an MP3 frame
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        return Modality.TEXT
    try:
        if looks_like_text(data.decode("utf-8")):
            return Modality.TEXT
    except UnicodeDecodeError:
        if looks_like_text(data.decode("latin-1")):
            return Modality.TEXT
    try:
        sf.info(io.BytesIO(data))
        return Modality.AUDIO
    except Exception:
        pass
    suffix = PurePath(filename).suffix.lower() if filename else ""
    if suffix in _SUFFIX_MODALITIES:
        return _SUFFIX_MODALITIES[suffix]
    raise OmniByteError("unsupported file type: not text, nor an image, audio or video format OmniByte can read")


def to_native(data: bytes, modality: Modality | None = None, filename: str | None = None) -> NativeBytes:
    """An upload -> its modality's native bytes, sniffing the modality when none is given."""
    data = check_upload(data, f"upload {filename!r}" if filename else "upload")
    if modality is None:
        modality = sniff_modality(data, filename)
    try:
        encode = _ENCODERS[Modality(modality)]
    except (ValueError, KeyError):
        raise OmniByteError(f"{modality} has no native format to convert to") from None
    return encode(data)


def decode_native(data: bytes, modality: Modality) -> Decoded:
    """Native bytes (complete, cut short or damaged) -> something renderable, with its repairs."""
    try:
        decode = _DECODERS[Modality(modality)]
    except (ValueError, KeyError):
        raise OmniByteError(f"{modality} has no native format to decode") from None
    return decode(data)
