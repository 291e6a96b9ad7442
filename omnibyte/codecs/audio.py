"""Audio's native format: a WAV of 8 kHz, unsigned 8-bit, mono PCM, 0.5 s (4,000 samples) by default.

The 44-byte canonical header (RIFF, a 16-byte `fmt ` chunk, `data`) is packed field by field, so
it is byte-identical for every clip of the same length: 4,044 bytes in all for the default 0.5 s.
Unsigned 8-bit means 128 is silence, and one sample is one byte, so the model predicts the wave
itself, one byte per sample.
"""

from __future__ import annotations

import functools
import io
import math
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from omnibyte.codecs.common import NativeBytes, check_upload
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

__all__ = [
    "SAMPLE_RATE",
    "DEFAULT_SECONDS",
    "MAX_SECONDS",
    "WAV_HEADER_BYTES",
    "WAV_BYTES",
    "DecodedAudio",
    "wav_header",
    "encode_audio",
    "decode_audio",
    "audio_to_wav",
]

SAMPLE_RATE = 8000
DEFAULT_SECONDS = 0.5
# a native clip is a model prompt or output; a minute is already far more than any context holds
MAX_SECONDS = 60.0
WAV_HEADER_BYTES = 44
WAV_BYTES = WAV_HEADER_BYTES + round(DEFAULT_SECONDS * SAMPLE_RATE)  # 4044: a default clip
_SILENCE = 128
# the polyphase filter scipy builds grows with up * down; past this the numpy resampler is cheaper
_MAX_POLYPHASE_FACTOR = 2000

# (offset, struct format, native value, name) of every header field except the two sizes
_NATIVE_FIELDS = (
    (0, "4s", b"RIFF", "RIFF magic"),
    (8, "4s", b"WAVE", "WAVE magic"),
    (12, "4s", b"fmt ", "fmt chunk id"),
    (16, "<I", 16, "fmt chunk size"),
    (20, "<H", 1, "format (PCM)"),
    (22, "<H", 1, "channels"),
    (24, "<I", SAMPLE_RATE, "sample rate"),
    (28, "<I", SAMPLE_RATE, "byte rate"),
    (32, "<H", 1, "block align"),
    (34, "<H", 8, "bits per sample"),
    (36, "4s", b"data", "data chunk id"),
)


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # (N,) uint8, 128 = silence
    sample_rate: int
    repairs: tuple[str, ...] = ()


def wav_header(n_samples: int, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The canonical 44-byte header of an unsigned 8-bit mono WAV holding `n_samples` samples."""
    # RIFF chunks are word-aligned: an odd data chunk is followed by one pad byte, which the RIFF
    # size counts and the data size does not
    pad = n_samples % 2
    return struct.pack(
        "<4sI4s" "4sIHHIIHH" "4sI",
        b"RIFF", 36 + n_samples + pad, b"WAVE",
        b"fmt ", 16, 1, 1, sample_rate, sample_rate, 1, 8,  # PCM, mono, rate, byte rate, block align, bits
        b"data", n_samples,
    )


def audio_to_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Unsigned 8-bit mono samples -> a complete, playable WAV file."""
    samples = np.asarray(samples)
    if samples.dtype != np.uint8 or samples.ndim != 1:
        raise OmniByteError(f"expected a 1-D uint8 array of samples, got {samples.dtype} {samples.shape}")
    if not isinstance(sample_rate, (int, np.integer)) or not 1 <= sample_rate <= 0xFFFFFFFF:
        raise OmniByteError(f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    pad = b"\x00" if len(samples) % 2 else b""
    return wav_header(len(samples), int(sample_rate)) + samples.tobytes() + pad


def decode_audio(data: bytes) -> DecodedAudio:
    """Native WAV bytes, possibly damaged or cut short -> unsigned 8-bit samples. Never raises.

    The header is always taken to be the canonical 44 bytes; fields that disagree with the native
    format are reported and ignored. Every byte after the header is a sample.
    """
    data = bytes(data)
    repairs = []
    if len(data) < WAV_HEADER_BYTES:
        repairs.append(f"header incomplete ({len(data)} of {WAV_HEADER_BYTES} bytes): no samples")
        return DecodedAudio(np.zeros(0, dtype=np.uint8), SAMPLE_RATE, tuple(repairs))
    damaged = [name for offset, fmt, value, name in _NATIVE_FIELDS
               if struct.unpack_from(fmt, data, offset)[0] != value]
    riff_size, = struct.unpack_from("<I", data, 4)
    declared, = struct.unpack_from("<I", data, 40)
    payload = data[WAV_HEADER_BYTES:]
    if declared % 2 and len(payload) == declared + 1:
        payload = payload[:-1]  # the RIFF pad byte after an odd data chunk
    n = len(payload)
    length_note = None
    if riff_size == 36 + declared + declared % 2:
        # the two size fields agree, so they say how long the clip was meant to be
        if declared > n:
            length_note = f"cut short: {n} of {declared} samples present"
        elif declared < n:
            length_note = f"{n - declared} byte(s) beyond the declared data size, kept as samples"
    else:
        # they disagree, so at least one is damaged: the bytes that are there decide
        damaged += [name for name, right in (("RIFF size", riff_size == 36 + n + n % 2), ("data size", declared == n))
                    if not right]
    if damaged:
        repairs.append(f"header fields damaged ({', '.join(damaged)}): assumed native 8 kHz unsigned 8-bit mono")
    if length_note:
        repairs.append(length_note)
    return DecodedAudio(np.frombuffer(payload, dtype=np.uint8).copy(), SAMPLE_RATE, tuple(repairs))


@functools.cache
def _scipy_resample_poly():
    try:
        from scipy.signal import resample_poly
    except ImportError:  # scipy is in requirements.txt; without it _resample_sinc stands in
        return None
    return resample_poly


def _resample_sinc(x: np.ndarray, src_rate: int, dst_rate: int, n_out: int,
                   zero_crossings: int = 16, beta: float = 8.6) -> np.ndarray:
    """Kaiser-windowed sinc interpolation, evaluated directly at each output instant.

    Slower than a polyphase filter but needs only numpy and any pair of rates works.
    """
    ratio = dst_rate / src_rate
    # when downsampling, the sinc is widened so frequencies above the new Nyquist are removed
    # instead of folding back as aliases
    cutoff = min(1.0, ratio)
    half = int(math.ceil(zero_crossings / cutoff))
    # taps past either end of the signal only ever meet zeros: a header claiming 2 GHz would
    # otherwise ask for millions of taps (and a gigabyte) to resample a few hundred samples
    reach = min(half, len(x) + 1)
    taps = np.arange(-reach + 1, reach + 1)  # (2 * reach,)
    out = np.zeros(n_out, dtype=np.float64)
    rows = max(1, 1_000_000 // len(taps))  # keeps each block's matrices to ~8 MB
    for start in range(0, n_out, rows):
        pos = np.arange(start, min(n_out, start + rows)) / ratio  # (b,) output instants, in input samples
        k = np.floor(pos).astype(np.int64)[:, None] + taps  # (b, 2 * half) input samples in reach
        t = pos[:, None] - k  # (b, 2 * half) distance from each
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta)
        kernel = cutoff * np.sinc(cutoff * t) * window
        values = np.where((k >= 0) & (k < len(x)), x[np.clip(k, 0, len(x) - 1)], 0.0)
        out[start:start + len(pos)] = (values * kernel).sum(axis=1)
    return out


def _resample(x: np.ndarray, src_rate: int, n_out: int) -> tuple[np.ndarray, str]:
    """Mono float samples at `src_rate` -> at most `n_out` samples at 8 kHz, and the method used."""
    g = math.gcd(src_rate, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, src_rate // g
    n_out = min(n_out, math.ceil(len(x) * up / down))
    resample_poly = _scipy_resample_poly()
    if resample_poly is not None and max(up, down) <= _MAX_POLYPHASE_FACTOR:
        return resample_poly(x, up, down)[:n_out], "polyphase filter"
    return _resample_sinc(x, src_rate, SAMPLE_RATE, n_out), "windowed sinc"


def _check_seconds(seconds: float) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or not 0 < seconds <= MAX_SECONDS:
        raise OmniByteError(f"seconds must be a number above 0 and at most {MAX_SECONDS:g}, got {seconds!r}")
    n = round(seconds * SAMPLE_RATE)
    if n < 1:
        raise OmniByteError(f"{seconds!r} seconds is less than one sample at {SAMPLE_RATE} Hz")
    return n


def encode_audio(data: bytes, seconds: float = DEFAULT_SECONDS) -> NativeBytes:
    """Any WAV, FLAC, OGG (or other format libsndfile reads) -> the native 8 kHz unsigned 8-bit WAV.

    The clip is mixed to mono, resampled, cut (or padded with silence) to `seconds` and quantized.
    """
    n_out = _check_seconds(seconds)
    data = check_upload(data, "audio")
    native = decode_audio(data)
    if not native.repairs and len(native.samples) == n_out:
        return NativeBytes(Modality.AUDIO, data, ("already a native 8 kHz 8-bit WAV, kept as is",))
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            src_rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
            notes = [f"{f.format} {f.subtype}, {src_rate} Hz, {channels} channel(s), {frames / max(src_rate, 1):.2f} s"]
            if src_rate <= 0 or channels <= 0:
                raise OmniByteError(f"corrupt audio: it declares {src_rate} Hz and {channels} channel(s)")
            # decode only what the clip needs, plus room for the resampling filter to settle
            margin = math.ceil(32 * max(1.0, src_rate / SAMPLE_RATE))
            x = f.read(math.ceil(n_out * src_rate / SAMPLE_RATE) + margin, dtype="float64", always_2d=True)
    except OmniByteError:
        raise
    except Exception as exc:
        raise OmniByteError(f"not audio that soundfile can read ({str(exc).strip() or type(exc).__name__})") from None
    if len(x) == 0:
        raise OmniByteError("the audio contains no samples")
    try:
        mono = np.nan_to_num(x.mean(axis=1))  # (frames,)
        if channels > 1:
            notes.append(f"mixed {channels} channels to mono")
        if src_rate != SAMPLE_RATE:
            mono, method = _resample(mono, src_rate, n_out)
            notes.append(f"resampled {src_rate} Hz -> {SAMPLE_RATE} Hz ({method})")
        mono = mono[:n_out]
        if frames / src_rate > n_out / SAMPLE_RATE:
            notes.append(f"kept the first {n_out / SAMPLE_RATE:g} s")
        if len(mono) < n_out:
            missing = (n_out - len(mono)) / SAMPLE_RATE
            notes.append(f"padded with {missing:.3f} s of silence to {n_out / SAMPLE_RATE:g} s")
            mono = np.concatenate([mono, np.zeros(n_out - len(mono))])
        # the inverse of how libsndfile reads 8-bit PCM ((v - 128) / 128), so native clips survive
        # a decode/encode round trip unchanged
        levels = np.round(mono * 128.0) + _SILENCE
        clipped = int(np.count_nonzero((levels < 0) | (levels > 255)))
        samples = np.clip(levels, 0, 255).astype(np.uint8)
    except Exception as exc:
        raise OmniByteError(f"could not convert the audio: {exc}") from None
    if clipped:
        notes.append(f"clipped {clipped} sample(s) that were louder than 8-bit audio holds")
    notes.append(f"stored as {n_out} unsigned 8-bit samples at {SAMPLE_RATE} Hz")
    return NativeBytes(Modality.AUDIO, audio_to_wav(samples), tuple(notes))
