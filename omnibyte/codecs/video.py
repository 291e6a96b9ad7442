"""Video's native format: Y4M (YUV4MPEG2), 16x16 greyscale, 8 frames at 8 fps: one second.

The header is always `YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono\\n`; each frame is `FRAME\\n` and 256
luma bytes, top row first, full range (0 black, 255 white, as ffmpeg reads `Cmono`). The file is
2,133 bytes, and a model sees one header and one marker, always the same.
"""

from __future__ import annotations

import bisect
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageSequence

from omnibyte.codecs.common import NEUTRAL_GREY, NativeBytes, check_upload
from omnibyte.codecs.image import MAX_IMAGE_PIXELS, center_square, open_image, shrink_square, to_rgb
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

__all__ = [
    "FRAME_SIZE",
    "FRAME_COUNT",
    "FPS",
    "Y4M_HEADER",
    "FRAME_MARKER",
    "Y4M_BYTES",
    "DecodedVideo",
    "encode_video",
    "decode_video",
    "video_to_gif",
    "frames_to_y4m",
]

FRAME_SIZE = 16
FRAME_COUNT = 8
FPS = 8
Y4M_HEADER = b"YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono\n"
FRAME_MARKER = b"FRAME\n"
_FRAME_PIXELS = FRAME_SIZE * FRAME_SIZE
Y4M_BYTES = len(Y4M_HEADER) + FRAME_COUNT * (len(FRAME_MARKER) + _FRAME_PIXELS)  # 2133

# GIF frames of 0 or 10 ms are played at 100 ms by browsers; sampling them as written would turn
# most of those GIFs into a blur of their first frames.
_DEFAULT_FRAME_MS = 100
_MIN_FRAME_MS = 20
# the first second of the source is all a native clip holds
_CLIP_SECONDS = Fraction(FRAME_COUNT, FPS)
_TARGET_TIMES = [Fraction(k, FPS) for k in range(FRAME_COUNT)]
# a damaged header line is looked for this far past where the native one ends
_HEADER_SLACK = 16
# a missing or extra byte shifts every frame after it; a FRAME marker this close to where it
# should be is taken as the frame's true start
_RESYNC_BYTES = 8

# Y4M colour spaces -> chroma (and alpha) samples per frame, given W and H
_Y4M_CHROMA = {
    "420jpeg": lambda w, h: 2 * ((w + 1) // 2) * ((h + 1) // 2),
    "420paldv": lambda w, h: 2 * ((w + 1) // 2) * ((h + 1) // 2),
    "420mpeg2": lambda w, h: 2 * ((w + 1) // 2) * ((h + 1) // 2),
    "420": lambda w, h: 2 * ((w + 1) // 2) * ((h + 1) // 2),
    "411": lambda w, h: 2 * ((w + 3) // 4) * h,
    "422": lambda w, h: 2 * ((w + 1) // 2) * h,
    "444": lambda w, h: 2 * w * h,
    "444alpha": lambda w, h: 3 * w * h,
    "mono": lambda w, h: 0,
}
_Y4M_COLOUR = re.compile(r"(420jpeg|420paldv|420mpeg2|444alpha|420|411|422|444|mono)(?:p?(\d+))?")


@dataclass(frozen=True)
class DecodedVideo:
    frames: np.ndarray  # (N, 16, 16) uint8 luma, top row first
    fps: int
    repairs: tuple[str, ...] = ()


def frames_to_y4m(frames: np.ndarray) -> bytes:
    """(N, 16, 16) uint8 greyscale frames -> native Y4M."""
    return Y4M_HEADER + b"".join(FRAME_MARKER + frame.tobytes() for frame in frames)


def _frame_ms(info: dict) -> int:
    duration = info.get("duration")
    if not isinstance(duration, (int, float)) or duration < _MIN_FRAME_MS:
        return _DEFAULT_FRAME_MS
    return round(duration)


def _image_frames(im: Image.Image) -> Iterator[tuple[Fraction, Image.Image]]:
    for frame in ImageSequence.Iterator(im):
        yield Fraction(_frame_ms(frame.info), 1000), frame


def _y4m_frames(data: bytes, notes: list[str]) -> Iterator[tuple[Fraction, Image.Image]]:
    """The luma planes of any 8- to 16-bit Y4M, each with its duration."""
    end = data.find(b"\n", 0, 1024)
    if end < 0:
        raise OmniByteError("corrupt Y4M: the header line never ends")
    params = {}
    for token in data[len(b"YUV4MPEG2"):end].decode("ascii", errors="replace").split():
        params[token[0]] = token[1:]
    try:
        width, height = int(params["W"]), int(params["H"])
    except (KeyError, ValueError):
        raise OmniByteError("corrupt Y4M: the header has no valid W and H") from None
    if width <= 0 or height <= 0 or width * height > MAX_IMAGE_PIXELS:
        raise OmniByteError(f"refused: the Y4M declares {width}x{height} frames")
    try:
        num, den = (int(part) for part in params.get("F", "8:1").split(":"))
        frame_seconds = Fraction(den, num)
        if frame_seconds <= 0:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise OmniByteError(f"corrupt Y4M: unreadable frame rate F{params.get('F')}") from None
    colour = _Y4M_COLOUR.fullmatch(params.get("C", "420jpeg"))  # 4:2:0 is the format's default
    if colour is None:
        raise OmniByteError(f"unsupported Y4M colour space C{params.get('C')}")
    bits = int(colour.group(2) or 8)
    if not 8 <= bits <= 16:
        raise OmniByteError(f"unsupported Y4M bit depth: {bits}")
    sample_bytes = 1 if bits == 8 else 2
    luma_bytes = width * height * sample_bytes
    frame_bytes = luma_bytes + _Y4M_CHROMA[colour.group(1)](width, height) * sample_bytes
    colour_name = params.get("C", "420jpeg")
    notes.append(f"Y4M {width}x{height} C{colour_name} at {float(1 / frame_seconds):g} fps: kept the luma")
    pos, index = end + 1, 0
    while pos < len(data):
        if not data.startswith(b"FRAME", pos):
            if index == 0:
                raise OmniByteError("corrupt Y4M: its first frame has no FRAME marker")
            notes.append(f"ignored {len(data) - pos} byte(s) after frame {index}: no FRAME marker")
            return
        start = data.find(b"\n", pos, pos + 1024) + 1
        if start == 0:
            raise OmniByteError(f"corrupt Y4M: frame {index + 1}'s marker never ends")
        if start + frame_bytes > len(data):
            if index == 0:
                raise OmniByteError("corrupt Y4M: its first frame is cut short")
            notes.append(f"dropped frame {index + 1}: it is cut short")
            return
        luma = np.frombuffer(data, dtype=np.uint8 if bits == 8 else "<u2", count=width * height, offset=start)
        if bits > 8:
            luma = (luma >> (bits - 8)).astype(np.uint8)
        yield frame_seconds, Image.fromarray(luma.reshape(height, width))
        pos, index = start + frame_bytes, index + 1


def _small_frame(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Any frame -> (16, 16) uint8 luma."""
    grey = center_square(to_rgb(im, notes).convert("L"), notes)
    return np.asarray(shrink_square(grey, FRAME_SIZE, notes), dtype=np.uint8)


def _sample_clip(source: Iterator[tuple[Fraction, Image.Image]], notes: list[str]) -> np.ndarray:
    """Frames with durations -> the 8 frames on screen at 0, 1/8, ... 7/8 s, looping if shorter."""
    starts: list[Fraction] = []
    frames: list[np.ndarray] = []
    now = Fraction(0)
    for duration, im in source:
        if now > _TARGET_TIMES[-1]:
            break  # past the clip: the rest of the source is never decoded
        # only the first frame's conversion is described; the others repeat it
        frames.append(_small_frame(im, notes if not frames else []))
        starts.append(now)
        now += duration
    else:
        if not frames:
            raise OmniByteError("the video has no frames")
        if now <= _TARGET_TIMES[-1]:
            notes.append(f"looped the {float(now):.2f} s animation to fill {float(_CLIP_SECONDS):g} s")
    total = now
    picked = [frames[bisect.bisect_right(starts, t % total if total else 0) - 1] for t in _TARGET_TIMES]
    return np.stack(picked)  # (8, 16, 16)


def encode_video(data: bytes) -> NativeBytes:
    """An animated GIF/WebP/PNG, a Y4M, or a still image -> the native 16x16 greyscale Y4M."""
    data = check_upload(data, "video")
    notes: list[str] = []
    try:
        if data.startswith(Y4M_HEADER):
            native = decode_video(data)
            if not native.repairs:
                return NativeBytes(Modality.VIDEO, data, ("already a native 16x16 Y4M, kept as is",))
            # a native clip cut short or damaged (a saved model output, say): salvage it as the
            # decoder would rather than refuse it as corrupt
            notes += ["native 16x16 Y4M, repaired", *native.repairs]
            source = ((Fraction(1, FPS), Image.fromarray(frame)) for frame in native.frames)
            frames = _sample_clip(source, notes)
            if len(native.frames) > FRAME_COUNT:
                notes.append(f"kept the first {FRAME_COUNT} frames")
        elif data.startswith(b"YUV4MPEG2"):
            frames = _sample_clip(_y4m_frames(data, notes), notes)
        else:
            im = open_image(data)
            notes.append(f"{im.format or 'image'} {im.width}x{im.height} {im.mode}")
            if getattr(im, "is_animated", False):
                frames = _sample_clip(_image_frames(im), notes)
                notes.append(f"sampled the first {float(_CLIP_SECONDS):g} s at {FPS} fps")
            else:
                frame = _small_frame(im, notes)
                frames = np.stack([frame] * FRAME_COUNT)
                notes.append(f"still image: repeated it in all {FRAME_COUNT} frames")
    except OmniByteError:
        raise
    except Exception as exc:
        raise OmniByteError(f"could not read the video: {exc}") from None
    notes.append(f"stored as {FRAME_COUNT} greyscale {FRAME_SIZE}x{FRAME_SIZE} frames at {FPS} fps (Y4M)")
    return NativeBytes(Modality.VIDEO, frames_to_y4m(frames), tuple(notes))


def _header_end(data: bytes) -> int:
    """Where the frames begin: at the first FRAME marker, else after the header line."""
    if data.startswith(Y4M_HEADER):
        return len(Y4M_HEADER)
    reach = len(Y4M_HEADER) + _HEADER_SLACK
    # the first marker is the surer sign: a damaged byte can turn into an early newline
    marker = data.find(b"FRAME", 0, reach)
    if marker >= 0:
        return marker
    newline = data.find(b"\n", 0, reach)
    return newline + 1 if newline >= 0 else len(Y4M_HEADER)


def _describe_header(header: bytes) -> str:
    if not header:
        return "header missing"
    if not header.startswith(b"YUV4MPEG2"):
        return "header damaged"
    native = Y4M_HEADER.split()[1:]
    tokens = header.split()[1:]
    differs = [t.decode("ascii", errors="replace") for t in tokens if t not in native]
    missing = [t.decode("ascii") for t in native if t not in tokens]
    parts = [f"has {' '.join(differs)}"] if differs else []
    parts += [f"lacks {' '.join(missing)}"] if missing else []
    return f"header {'; '.join(parts) or 'damaged'}"


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def decode_video(data: bytes) -> DecodedVideo:
    """Native Y4M bytes, possibly damaged or cut short -> (N, 16, 16) frames. Never raises.

    The native layout and rate are assumed throughout: header parameters that differ are
    reported, damaged FRAME markers are skipped over, and a cut-short last frame is completed
    in grey.
    """
    data = bytes(data)
    repairs = []
    pos = _header_end(data)
    header = data[:pos]
    if header != Y4M_HEADER:
        repairs.append(f"{_describe_header(header)}: assumed {FRAME_SIZE}x{FRAME_SIZE} mono at {FPS} fps")
    frames = []
    damaged, shifted = [], []
    while pos < len(data):
        number = len(frames) + 1
        if data.startswith(FRAME_MARKER, pos):
            start = pos + len(FRAME_MARKER)
        else:
            nearby = data.find(FRAME_MARKER, max(pos - _RESYNC_BYTES, 0), pos + len(FRAME_MARKER) + _RESYNC_BYTES)
            if nearby >= 0:
                shifted.append(number)
                start = nearby + len(FRAME_MARKER)
            else:
                damaged.append(number)
                start = pos + len(FRAME_MARKER)
        if start >= len(data):
            repairs.append(f"ignored the last {len(data) - pos} byte(s): too few to hold a frame")
            break
        pixels = data[start:start + _FRAME_PIXELS]
        if len(pixels) < _FRAME_PIXELS:
            repairs.append(f"frame {number} cut short: {len(pixels)} of {_FRAME_PIXELS} pixels present;"
                           " the rest is grey")
            pixels += bytes([NEUTRAL_GREY]) * (_FRAME_PIXELS - len(pixels))
        frames.append(np.frombuffer(pixels, dtype=np.uint8).reshape(FRAME_SIZE, FRAME_SIZE))
        pos = start + _FRAME_PIXELS
    if damaged:
        repairs.append(f"FRAME marker damaged in frame(s) {_ranges(damaged)}: assumed the native position")
    if shifted:
        repairs.append(f"FRAME marker out of place in frame(s) {_ranges(shifted)}: resynchronised on it")
    if len(frames) < FRAME_COUNT:
        repairs.append(f"only {len(frames)} of {FRAME_COUNT} frames present")
    elif len(frames) > FRAME_COUNT:
        repairs.append(f"{len(frames)} frames, more than the native {FRAME_COUNT}")
    stacked = np.stack(frames) if frames else np.zeros((0, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    return DecodedVideo(stacked, FPS, tuple(repairs))


def video_to_gif(frames: np.ndarray, fps: int = FPS, scale: int = 8) -> bytes:
    """(N, H, W) uint8 frames -> a looping animated GIF, each pixel a crisp `scale` x `scale` block.

    No frames at all renders as one grey frame, so a failed generation still shows something.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 3:
        raise OmniByteError(f"expected uint8 frames of shape (N, H, W), got {frames.dtype} {frames.shape}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not fps > 0:
        raise OmniByteError(f"fps must be a positive number, got {fps!r}")
    if not isinstance(scale, int) or scale < 1:
        raise OmniByteError(f"scale must be a positive whole number, got {scale!r}")
    if len(frames) == 0:
        frames = np.full((1, FRAME_SIZE, FRAME_SIZE), NEUTRAL_GREY, dtype=np.uint8)
    images = [Image.fromarray(frame.repeat(scale, axis=0).repeat(scale, axis=1)) for frame in frames]
    # browsers play frames shorter than 20 ms at 100 ms, so faster clips are capped at 50 fps
    duration = max(_MIN_FRAME_MS, round(1000 / float(fps)))
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return out.getvalue()
