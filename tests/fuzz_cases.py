"""Fuzz cases shared by tests/test_fuzz.py (hypothesis) and benchmarks/fuzz.py (the long seeded
run): the seed files, the mutations, and the `check_*` properties, each raising AssertionError on a
violation (or letting an unexpected exception through)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from omnibyte.cli import build_parser, main
from omnibyte.codecs import (
    BMP_BYTES,
    WAV_BYTES,
    Y4M_BYTES,
    NativeBytes,
    audio_to_wav,
    decode_native,
    encode_text,
    frames_to_y4m,
    pixels_to_bmp,
    to_native,
)
from omnibyte.detector import ModalityDetector
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

try:
    from omnibyte.tools import compress
    compress.compress_bytes, compress.decompress_bytes, compress.model_fingerprint  # noqa: B018 (the API used here)
    COMPRESS_MISSING = None
except (ImportError, AttributeError) as exc:  # another engineer's work in progress: skip, say why
    compress = None
    COMPRESS_MISSING = f"omnibyte.tools.compress is not usable yet: {type(exc).__name__}: {exc}"


_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])


settings.register_profile("ci", max_examples=60, **_COMMON)


settings.register_profile("long", max_examples=10_000, **_COMMON)


PROFILE = os.environ.get("OMNIBYTE_FUZZ_PROFILE", "ci")


FUZZ = settings(settings.get_profile(PROFILE))  # per test, not loaded globally: other files keep their settings


FUZZ_SLOW = settings(FUZZ, max_examples=max(12, FUZZ.max_examples // 3))  # the model-backed checks


NATIVE_MODALITIES = (Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)


NATIVE_SIZES = {Modality.IMAGE: BMP_BYTES, Modality.AUDIO: WAV_BYTES, Modality.VIDEO: Y4M_BYTES}


def _gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // (width + height)], axis=-1).astype(np.uint8)  # (H, W, 3)


def _image_file(fmt: str, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(_gradient(12, 20)).save(out, format=fmt, **save)
    return out.getvalue()


def _gif_file() -> bytes:
    frames = [Image.new("L", (10, 8), level) for level in (0, 120, 240)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return out.getvalue()


def _sound_file(fmt: str, rate: int, seconds: float = 0.05, subtype: str | None = None) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    out = io.BytesIO()
    sf.write(out, 0.5 * np.sin(2 * np.pi * 440 * t), rate, format=fmt, subtype=subtype)
    return out.getvalue()


NATIVE = {
    Modality.TEXT: encode_text("Grüße aus Zürich! The quick brown fox — 狐狸 — jumps. 🦊\n".encode() * 3).data,
    Modality.IMAGE: pixels_to_bmp(_gradient(32, 32)),
    Modality.AUDIO: audio_to_wav((128 + 100 * np.sin(np.arange(4000) / 5)).astype(np.uint8)),
    Modality.VIDEO: frames_to_y4m(np.stack([np.full((16, 16), 30 * i, dtype=np.uint8) for i in range(8)])),
}


UPLOADS = {
    "png": _image_file("PNG"),
    "jpeg": _image_file("JPEG", quality=70),
    "gif": _gif_file(),
    "bmp": _image_file("BMP"),
    "wav": _sound_file("WAV", 11025, subtype="PCM_16"),
    "flac": _sound_file("FLAC", 16000),
    "y4m": b"YUV4MPEG2 W4 H2 F25:1 C420jpeg\n" + b"".join(b"FRAME\n" + bytes(range(i, i + 12)) for i in range(3)),
    "utf16": "héllo wörld\n".encode("utf-16"),
    "cp1252": "caf\xe9 \u20ac5".encode("cp1252"),
}


SEEDS = [*NATIVE.values(), *UPLOADS.values()]


EDITS = ("set", "flip", "insert", "delete", "truncate", "splice")


def apply_edits(data: bytes, edits: Sequence[tuple[str, int, int, bytes]]) -> bytes:
    """`data` with each edit applied in turn: (kind, position, number, bytes).

    Positions wrap around the current length, so any integers make a valid edit; "splice" puts
    in a piece of another file, the damage that joins two files into one.
    """
    out = bytearray(data)
    for kind, at, n, chunk in edits:
        at %= len(out) + 1
        if kind == "set" and out:
            out[at % len(out)] = n & 0xFF
        elif kind == "flip" and out:
            out[at % len(out)] ^= 1 << (n % 8)
        elif kind in ("insert", "splice"):
            out[at:at] = chunk
        elif kind == "delete":
            del out[at:at + 1 + n % 64]
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


def _piece(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(seed)), st.integers(0, 400)).map(lambda p: seed[p[0]:p[0] + p[1]])


edit = st.tuples(st.sampled_from(EDITS), st.integers(0, 2**16), st.integers(0, 255),
                 st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(SEEDS).flatmap(_piece)))


def damaged(seeds: Sequence[bytes], joins: int = 1) -> st.SearchStrategy[bytes]:
    """One seed, or up to `joins` of them end to end, with up to 6 edits."""
    whole = st.lists(st.sampled_from(list(seeds)), min_size=1, max_size=joins).map(b"".join)
    return st.builds(apply_edits, whole, st.lists(edit, max_size=6))


def check_segments(data: bytes, segments) -> None:
    """Segments cover `data` exactly: in order, contiguous, non-empty, confidences in [0, 1]."""
    assert isinstance(segments, list)
    pos = 0
    for s in segments:
        assert s.start == pos and s.end > s.start, (pos, s)
        assert isinstance(s.modality, Modality) and isinstance(s.format, str) and s.format
        assert isinstance(s.confidence, float) and 0.0 <= s.confidence <= 1.0, s
        # detect_bytes turns an internal exception into one segment saying so: that is a crash
        assert not s.reason.startswith("detector error"), s.reason
        pos = s.end
    assert pos == len(data)


def check_detector(data: bytes, detector: ModalityDetector) -> None:
    check_segments(data, detector.detect_bytes(data))


def check_decode(data: bytes, modality: Modality) -> None:
    """decode_native never raises on any bytes and always returns the promised shape."""
    decoded = decode_native(data, modality)
    assert isinstance(decoded.repairs, tuple) and all(isinstance(r, str) for r in decoded.repairs)
    if modality is Modality.TEXT:
        assert isinstance(decoded.text, str)
        decoded.text.encode("utf-8")  # renderable: no lone surrogates
    elif modality is Modality.IMAGE:
        assert decoded.pixels.shape == (32, 32, 3) and decoded.pixels.dtype == np.uint8
    elif modality is Modality.AUDIO:
        assert decoded.samples.ndim == 1 and decoded.samples.dtype == np.uint8 and decoded.sample_rate == 8000
    else:
        assert decoded.frames.ndim == 3 and decoded.frames.shape[1:] == (16, 16)
        assert decoded.frames.dtype == np.uint8 and decoded.fps == 8


def check_to_native(data: bytes, modality: Modality | None) -> str:
    """to_native gives clean native bytes of the exact size, or refuses with OmniByteError only."""
    try:
        native = to_native(data, modality)
    except OmniByteError as exc:
        assert str(exc), "a refusal must say why"
        return "refused"
    assert isinstance(native, NativeBytes) and isinstance(native.data, bytes)
    assert modality is None or native.modality is modality
    assert native.modality in NATIVE_MODALITIES
    if native.modality is Modality.TEXT:
        native.data.decode("utf-8")
    else:
        assert len(native.data) == NATIVE_SIZES[native.modality], (native.modality, len(native.data))
        # what the converter writes, the decoder reads without a single repair
        assert decode_native(native.data, native.modality).repairs == ()
    return "converted"


def check_decompress(model, blob: bytes, original: bytes | None = None) -> str:
    """A container either decompresses to the bytes it was made from (when known) or to bytes its
    own header vouches for, or is refused with OmniByteError: never wrong bytes, never another error."""
    try:
        data = compress.decompress_bytes(model, blob)
    except OmniByteError as exc:
        assert str(exc)
        return "refused"
    if original is not None:
        assert data == original, "a damaged container decompressed to wrong bytes"
    header = compress.read_header(blob)
    assert len(data) == header.original_size and zlib.crc32(data) == header.checksum
    return "decompressed"


def check_parse(argv: list[str], parser=None) -> str:
    """Parsing any argument list gives a namespace or argparse's exit: 0 for --help, 2 for misuse."""
    parser = parser or build_parser()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), exc.code
            return f"exit {exc.code}"
    return "parsed"


def check_main(argv: list[str], cwd: Path) -> str:
    """The CLI returns 0 or 1 or exits 0 or 2, in `cwd`, with no traceback and nothing written."""
    import torch

    threads = torch.get_num_threads()
    out, err = _Terminal("strict"), _Terminal("backslashreplace")  # as Python sets up a UTF-8 terminal
    before = sorted(p.name for p in cwd.iterdir())
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
                assert code in (0, 2), code
            else:
                assert code in (0, 1), code
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide
    assert "Traceback" not in err.getvalue()
    if code:
        assert err.getvalue().strip(), "a non-zero exit says why on stderr"
    assert sorted(p.name for p in cwd.iterdir()) == before
    return f"exit {code}"


class _Terminal(io.TextIOWrapper):
    """stdout or stderr as on a UTF-8 terminal: stdout strict (printing a lone surrogate raises),
    stderr backslashreplace."""

    def __init__(self, errors: str) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors=errors, write_through=True)

    def getvalue(self) -> str:
        return self.buffer.getvalue().decode("utf-8", errors="replace")


DETECTOR = ModalityDetector(use_libmagic=False)


DETECTOR_MAGIC = ModalityDetector()


def make_containers(model) -> list[tuple[bytes, bytes]]:
    """Small originals and their containers: the tiny model codes 40 bytes in a few milliseconds."""
    originals = [b"", b"\x00", NATIVE[Modality.TEXT][:40], NATIVE[Modality.IMAGE][:60],
                 bytes(np.random.default_rng(0).integers(0, 256, 70, dtype=np.uint8))]
    return [(compress.compress_bytes(model, o), o) for o in originals]


def forged_container(model, tag: int, sizes: tuple[int, int, int], streams: list[bytes], checksum: int) -> bytes:
    """A container whose header is well formed and passes its check, with arbitrary contents:
    what gets past the cheap checks to the range decoder."""
    original_size, window, rows = sizes
    batches = -(-original_size // (window * rows)) if window * rows else 0
    streams = (streams + [b""] * batches)[:batches]
    header = (compress.MAGIC + bytes([compress.VERSION]) + compress.model_fingerprint(model)
              + struct.pack("<I", checksum) + bytes([tag]) + b"".join(map(compress._uvarint, sizes))
              + b"".join(compress._uvarint(len(s)) for s in streams))
    return header + compress._header_check(header) + b"".join(streams)


def _command_options() -> dict[str, list[str]]:
    """Each subcommand's option strings, read from the parser itself (so new ones are fuzzed too)."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sorted(s for a in sub._actions for s in a.option_strings) for name, sub in subparsers.choices.items()}


COMMAND_OPTIONS = _command_options()


OPTIONS = sorted({*COMMAND_OPTIONS, *(o for opts in COMMAND_OPTIONS.values() for o in opts)})


FILE_NAMES = ["a.txt", "missing.bin", "b.bmp", "$(touch pwned)", os.fsdecode(b"\xff.bin"), "sub", "sub/", "nope",
              "../nope", "/"]


VALUES = ["0", "1", "-1", "2", "1e309", "nan", "-inf", "99999999999", "9" * 5000, "tiny", "demo", "text", "image",
          "", "-", "--", "a b;c|d", "..", "\ud800", "a\x00b", "é", "-h", *FILE_NAMES]


argument = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), st.text(max_size=12))


# mostly a real subcommand with its own options, so parsing gets past the first token
command_line = st.sampled_from(sorted(COMMAND_OPTIONS)).flatmap(
    lambda c: st.lists(st.one_of(st.sampled_from(COMMAND_OPTIONS[c]), argument), max_size=8).map(lambda r: [c, *r]))


def make_cli_folder(folder: Path) -> Path:
    """A folder of small files to point the CLI at; nothing may be added to it."""
    (folder / "a.txt").write_bytes(NATIVE[Modality.TEXT])
    (folder / "missing.bin").write_bytes(b"")  # present, empty: the name only sounds absent
    (folder / "b.bmp").write_bytes(NATIVE[Modality.IMAGE][:900])
    (folder / "$(touch pwned)").write_bytes(b"\x00\xff" * 40)
    (folder / os.fsdecode(b"\xff.bin")).write_bytes(b"OMB\x01" + bytes(40))  # a name that is not UTF-8
    (folder / "sub").mkdir()
    return folder


CHEAP_COMMANDS = ["detect", "info", "decompress"]  # no model (detect), or a tiny one that loads in milliseconds


CHEAP_TOKENS = ["--json", "--quiet", "--preset", "tiny", "--model", "--threads", "2", "-h", *VALUES[3:],
                *FILE_NAMES * 3]


def cheap_argv(command: str, rest: list[str]) -> list[str]:
    """A model only ever from --preset tiny: the shipped checkpoint is too slow to load per case."""
    if command != "detect":
        rest = [a for a in rest if a not in ("--model", "--preset")] + ["--preset", "tiny"]
    return [command, *rest]

