"""Images' native format: a 32x32, 24-bit uncompressed BMP of exactly 3,126 bytes.

Layout: a 14-byte BITMAPFILEHEADER and a 40-byte BITMAPINFOHEADER (BI_RGB), then 32 rows of
32 BGR pixels. Rows run bottom-up, so the first pixel bytes are the bottom row, and each row is
96 bytes, already a multiple of 4, so there is no padding. The header is packed field by field,
so it is byte-identical every time; a model sees one header, always the same.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from omnibyte.codecs.common import NEUTRAL_GREY, NativeBytes, check_upload
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

__all__ = [
    "IMAGE_SIZE",
    "BMP_HEADER",
    "BMP_BYTES",
    "MAX_IMAGE_PIXELS",
    "DecodedImage",
    "encode_image",
    "decode_image",
    "image_to_png",
    "pixels_to_bmp",
    "SNIFFED_IMAGE_FORMATS",
    "identify_image",
    "open_image",
    "to_rgb",
    "center_square",
]

IMAGE_SIZE = 32
_ROW_BYTES = IMAGE_SIZE * 3  # 96: a multiple of 4, so BMP rows need no padding
_PIXEL_BYTES = IMAGE_SIZE * _ROW_BYTES  # 3072
_HEADER_BYTES = 14 + 40
BMP_BYTES = _HEADER_BYTES + _PIXEL_BYTES  # 3126
# 2835 pixels per metre = 72 dpi, what GIMP and ImageMagick write; the value only matters in
# that it never changes.
_PIXELS_PER_METRE = 2835

BMP_HEADER = struct.pack(
    "<2sIHHI" "IiiHHIIiiII",
    b"BM", BMP_BYTES, 0, 0, _HEADER_BYTES,  # BITMAPFILEHEADER: magic, file size, reserved x2, pixel offset
    40, IMAGE_SIZE, IMAGE_SIZE, 1, 24,  # BITMAPINFOHEADER: its size, width, height (> 0: bottom-up), planes, bpp
    0, _PIXEL_BYTES, _PIXELS_PER_METRE, _PIXELS_PER_METRE, 0, 0,  # BI_RGB, image size, x/y ppm, palette: none
)
assert len(BMP_HEADER) == _HEADER_BYTES

# Images declaring more pixels than this are refused before their pixels are decoded (64 MP:
# far beyond any photo worth shrinking to 32x32, far below what would exhaust memory). Pillow's
# own decompression-bomb limit, Image.MAX_IMAGE_PIXELS, is respected too when it is lower. (Its
# warning is not caught: warnings.catch_warnings changes process-wide state, unsafe in the app's
# threads, and the size check below refuses every image Pillow would warn about.)
MAX_IMAGE_PIXELS = 64_000_000

# (offset, struct format, name) of the header fields that decide where the pixels are and how
# they are laid out; the resolution and palette-count fields do not, so they are not checked.
_LAYOUT_FIELDS = (
    (0, "2s", "magic"),
    (2, "<I", "file size"),
    (10, "<I", "pixel offset"),
    (14, "<I", "info header size"),
    (18, "<i", "width"),
    (22, "<i", "height"),
    (26, "<H", "planes"),
    (28, "<H", "bits per pixel"),
    (30, "<I", "compression"),
)


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (32, 32, 3) uint8 RGB, top row first
    rows_present: int  # complete pixel rows that arrived, counted from the bottom
    repairs: tuple[str, ...] = ()


# Formats Pillow recognises by a signature: when sniffing an upload only these are tried, because
# some of Pillow's other readers (TGA, for one) accept almost any bytes.
SNIFFED_IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "PPM")


class _UnknownImageFormat(OmniByteError):
    """Pillow recognised no image format: while sniffing, a sign to try other modalities."""


def identify_image(data: bytes) -> Image.Image | None:
    """The upload opened as an image if it has a known image signature, else None.

    Raises OmniByteError for a recognised image that is a decompression bomb or corrupt.
    """
    try:
        return open_image(data, SNIFFED_IMAGE_FORMATS)
    except _UnknownImageFormat:
        return None


def open_image(data: bytes, formats: list[str] | tuple[str, ...] | None = None) -> Image.Image:
    """Open an image lazily, refusing decompression bombs before any pixel is decoded."""
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise OmniByteError(f"refused: the image declares too many pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise _UnknownImageFormat("not an image that Pillow can read (unknown or corrupt format)") from None
    except Exception as exc:
        raise OmniByteError(f"corrupt image: {exc}") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise OmniByteError(f"corrupt image: it declares a size of {width}x{height}")
    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise OmniByteError(f"refused: the image declares too many pixels ({width}x{height}, more than the "
                            f"limit of {limit:,})")
    return im


def _full_scale(mode: str, peak: float) -> float:
    """The value that means white: 16-bit modes use 65535; 32-bit and float ones say nothing, so
    the smallest usual range that holds the brightest pixel is assumed."""
    if mode.startswith("I;16"):
        return 65535.0
    for top in ((1.0,) if mode == "F" else ()) + (255.0, 65535.0):
        if peak <= top:
            return top
    return peak


def to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode -> RGB, with transparency composited onto white."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow clips these to 0..255 instead of scaling, which turns most images white
        values = np.nan_to_num(np.asarray(im, dtype=np.float64))
        top = _full_scale(im.mode, float(values.max()) if values.size else 0.0)
        im = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        notes.append("scaled high-bit-depth pixels to 8 bits")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("composited transparency onto white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def center_square(im: Image.Image, notes: list[str]) -> Image.Image:
    width, height = im.size
    if width == height:
        return im
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    notes.append(f"center-cropped to {side}x{side}")
    return im.crop((left, top, left + side, top + side))


def shrink_square(im: Image.Image, side: int, notes: list[str]) -> Image.Image:
    """A square picture -> side x side. A whole-number enlargement of a side x side picture (pixel
    art, or our own examples: every k x k block one colour) is taken back pixel for pixel, since
    Lanczos would ring at its hard edges and hand the model colours the picture never had;
    anything else is resampled with Lanczos."""
    if im.width == side:
        return im
    if im.width % side == 0:
        factor = im.width // side
        pixels = np.asarray(im)
        corners = np.ascontiguousarray(pixels[::factor, ::factor])
        # (side, factor, side, factor, ...) against each block's corner, without copying the picture
        blocks = pixels.reshape(side, factor, side, factor, *pixels.shape[2:])
        if (blocks == corners[:, None, :, None]).all():
            notes.append(f"a {factor}x enlargement of a {side}x{side} picture: taken back pixel for pixel")
            return Image.fromarray(corners)
    notes.append(f"resized {im.width}x{im.height} -> {side}x{side} (Lanczos)")
    return im.resize((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)


def pixels_to_bmp(rgb: np.ndarray) -> bytes:
    """(32, 32, 3) uint8 RGB, top row first -> native BMP (bottom-up rows of BGR pixels)."""
    return BMP_HEADER + np.ascontiguousarray(rgb[::-1, :, ::-1]).tobytes()


def encode_image(data: bytes) -> NativeBytes:
    """Any image Pillow reads (PNG, JPEG, GIF, WebP, BMP, ...) -> the native 32x32 BMP."""
    data = check_upload(data, "image")
    if data.startswith(BMP_HEADER):
        if len(data) == BMP_BYTES:
            return NativeBytes(Modality.IMAGE, data, ("already a native 32x32 BMP, kept as is",))
        # a native BMP cut short or run long (a saved model output, say): salvage it as the
        # decoder would rather than refuse it as corrupt
        salvaged = decode_image(data)
        return NativeBytes(Modality.IMAGE, pixels_to_bmp(salvaged.pixels),
                           ("native 32x32 BMP, repaired",) + salvaged.repairs)
    im = open_image(data)
    try:
        notes = [f"{im.format or 'image'} {im.width}x{im.height} {im.mode}"]
        if getattr(im, "is_animated", False):
            notes.append(f"used the first of {_frame_count(im)} frames")
        # JPEGs can decode straight at a reduced scale: much faster for big photos, same result
        original = im.size
        im.draft("RGB", (IMAGE_SIZE * 2, IMAGE_SIZE * 2))
        if im.size != original:
            notes.append(f"decoded at reduced scale, {im.width}x{im.height}")
        im.load()
        if _orientation(im) > 1:
            # phone photos store pixels sideways and say so in EXIF; show them the way they were shot
            im = ImageOps.exif_transpose(im)
            notes.append("rotated as its EXIF orientation says")
        im = shrink_square(center_square(to_rgb(im, notes), notes), IMAGE_SIZE, notes)
        pixels = np.asarray(im, dtype=np.uint8)
    except OmniByteError:
        raise
    except Exception as exc:
        raise OmniByteError(f"corrupt or unsupported image: {exc}") from None
    notes.append("stored as a 32x32 24-bit BMP")
    return NativeBytes(Modality.IMAGE, pixels_to_bmp(pixels), tuple(notes))


def _frame_count(im: Image.Image) -> str:
    try:
        return str(im.n_frames)
    except Exception:  # a broken later frame does not stop the first one being used
        return "several"


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def decode_image(data: bytes) -> DecodedImage:
    """Native BMP bytes, possibly damaged or cut short -> 32x32 RGB pixels. Never raises.

    Damaged layout fields are ignored in favour of the native layout. Missing rows are grey;
    because BMP rows run bottom-up, an image cut short keeps its bottom rows.
    """
    data = bytes(data)
    repairs = []
    if len(data) < _HEADER_BYTES:
        repairs.append(f"header incomplete ({len(data)} of {_HEADER_BYTES} bytes): assumed the native layout")
    else:
        damaged = [name for offset, fmt, name in _LAYOUT_FIELDS
                   if struct.unpack_from(fmt, data, offset) != struct.unpack_from(fmt, BMP_HEADER, offset)]
        if struct.unpack_from("<I", data, 34)[0] not in (0, _PIXEL_BYTES):
            damaged.append("image size")
        if damaged:
            repairs.append(f"header fields damaged ({', '.join(damaged)}): assumed the native 32x32 24-bit layout")
    payload = data[_HEADER_BYTES:_HEADER_BYTES + _PIXEL_BYTES]
    if len(data) > BMP_BYTES:
        repairs.append(f"ignored {len(data) - BMP_BYTES} byte(s) after the last row")
    bottom_up = np.full((IMAGE_SIZE * IMAGE_SIZE, 3), NEUTRAL_GREY, dtype=np.uint8)  # (1024, 3) BGR
    whole_pixels = len(payload) // 3
    bottom_up[:whole_pixels] = np.frombuffer(payload, dtype=np.uint8, count=whole_pixels * 3).reshape(-1, 3)
    rows_present = len(payload) // _ROW_BYTES
    if rows_present < IMAGE_SIZE:
        message = f"cut short: {rows_present} of {IMAGE_SIZE} rows present (from the bottom)"
        partial = whole_pixels - rows_present * IMAGE_SIZE
        if partial:
            message += f", plus {partial} pixel(s) of the next row"
        repairs.append(message + "; the rest is grey")
    pixels = bottom_up.reshape(IMAGE_SIZE, IMAGE_SIZE, 3)[::-1, :, ::-1]  # (32, 32, 3) RGB top-down
    return DecodedImage(np.ascontiguousarray(pixels), rows_present, tuple(repairs))


def image_to_png(pixels: np.ndarray, scale: int = 8) -> bytes:
    """RGB or greyscale pixels -> PNG, each pixel drawn as a crisp `scale` x `scale` block."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise OmniByteError(f"expected uint8 pixels of shape (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}")
    if not isinstance(scale, int) or scale < 1:
        raise OmniByteError(f"scale must be a positive whole number, got {scale!r}")
    big = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    out = io.BytesIO()
    Image.fromarray(big).save(out, format="PNG")
    return out.getvalue()
