"""Lossless compression with the model: a range coder driven by its next-byte probabilities.

    blob = compress_bytes(model, data)
    assert decompress_bytes(model, blob) == data

How it works. The file is cut into windows of at most `max_seq_len - len(prefix)` bytes (the
same windows `score.py` scores), each coded on its own after DOC_START and, when the file is
recognisably one modality, that modality's tag. Up to `rows` windows at a time run as one
batch, one byte of every window per step with the KV cache, and the bytes of a step are coded
in window order into that batch's range-coded stream (constriction's `RangeEncoder`). At each
step the model's 262 outputs are cut to the 256 byte values, renormalised, and quantised to
integer frequencies (every byte at least 1, so any byte stays codable, however surprising).

Exactness. A range decoder must see exactly the frequencies the encoder used, or it decodes
garbage. The decoder cannot run one batched forward pass over the whole file (it does not
have the file yet), so encoder and decoder run the very same function (`_code_windows`), with
the same batch composition, the same cache size and the same one-token steps; only the
callback that turns frequencies into bytes differs. Container version 5 takes every step, the
prefix's included, and the frequencies themselves in `deterministic.py`: float32 arithmetic in
an order fixed by the code, no fast-math, no libm, one thread, so the frequencies are the same
bits on every machine (see that module). Versions 1 to 4, from earlier releases, computed them
with the fast-math compiled step (2 and 4) or PyTorch (1 and 3), whose last bits depend on the
CPU, and are still read (`FORMATS`); a machine that computes them differently from the one that
wrote the file fails the checksum, as before.

What is guaranteed:
- Version 5, anywhere: decompression returns the original byte for byte on any machine whose
  float32 arithmetic is IEEE 754's default (x86-64 and ARM64 CPUs are; checked before coding),
  with any thread count, given the same model and the same constriction version (tested
  against Numba's generic x86-64 target and a NumPy transcription; the files committed in
  tests/fixtures/ must keep decoding and encoding byte for byte).
- Always: decompression never returns a wrong file silently. The container carries a CRC-32
  of the original and a fingerprint of the model (config and weights); a different model, a
  damaged or truncated container, or (versions 1 to 4) a machine whose arithmetic differs is an
  `OmniByteError`, never wrong bytes.

Container (header integers little-endian; uvarint = LEB128):

    "OMB" | version (1 byte) | model fingerprint (4) | CRC-32 of the original (4)
    | prefix tag (1: 0 = none, else the modality tag's index + 1)
    | original length, window length, rows per batch (uvarint each)
    | coded bytes of each batch's stream (uvarint each) | header check (2: CRC-32 of the above, low bits)
    | the streams, one after another (32-bit words, big-endian from version 3, each ended as
      short as it decodes: `_stream_bytes`)
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import constriction
import numpy as np
import torch

from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.model.compiled_decode import CompiledDecodeStep, compiled_decode_supported
from omnibyte.model.deterministic import DeterministicStep, byte_frequencies, check_float_environment
from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import BYTE_VALUES, MODALITY_TAGS, document_tokens

__all__ = [
    "MAGIC",
    "VERSION",
    "ContainerHeader",
    "compress_bytes",
    "decompress_bytes",
    "read_header",
    "model_fingerprint",
    "guess_modality",
    "prefix_tokens",
]

MAGIC = b"OMB"


@dataclass(frozen=True)
class ContainerFormat:
    """What a container version means for its streams."""

    # where every step runs: the deterministic step (deterministic.py), the fast-math compiled
    # step (compiled_decode.py, float32 models on a CPU only) or PyTorch
    steps: Literal["deterministic", "compiled", "torch"]
    short_end: bool  # big-endian words ended at the shortest point (`_stream_bytes`), else constriction's seal


# Every version is read; every model writes version 5. Versions 1 to 4 (earlier releases) decode
# only where the machine computes the model's last bits as the writer's did; 1 and 2 ended each
# stream with constriction's own seal, about two bytes longer.
FORMATS = {
    1: ContainerFormat(steps="torch", short_end=False),
    2: ContainerFormat(steps="compiled", short_end=False),
    3: ContainerFormat(steps="torch", short_end=True),
    4: ContainerFormat(steps="compiled", short_end=True),
    5: ContainerFormat(steps="deterministic", short_end=True),
}
VERSION = 5
READABLE_VERSIONS = tuple(FORMATS)
FINGERPRINT_BYTES = 4
# Frequencies are quantised onto this many steps (constriction codes with 24-bit precision).
# Each byte gets floor(p * FREQ_SCALE) + 1, so the floor of 1 costs at most 256 / 2**24 of the
# probability mass: a negligible 0.00002 bits per byte.
FREQ_SCALE = 2**24 - BYTE_VALUES
MAX_ROWS = 16  # windows per batch: on a CPU a step of 16 rows costs a few single-row steps
KV_CACHE_BUDGET = 1 << 30  # bytes of KV cache one batch may hold (the reference preset: 5 rows)
MAX_ORIGINAL_BYTES = 1 << 40  # a header declaring more than this is corrupt, not ambitious
# a file whose largest detected segment covers this share of it is tagged as that modality
TAG_COVERAGE = 0.9

# the prefix tag byte: 0 = DOC_START only, i + 1 = DOC_START and the i-th modality tag
_TAGGED = [m for m in (Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)]

ProgressCallback = Callable[[int, int], None]  # (bytes coded so far, total bytes)


@dataclass(frozen=True)
class ContainerHeader:
    """What a compressed file says about itself (`read_header`)."""

    version: int
    model_fingerprint: bytes
    checksum: int  # CRC-32 of the original
    modality: Modality  # the tag the windows were coded after; BINARY = no tag
    original_size: int
    window_size: int  # bytes per window (the last one may be shorter)
    rows: int  # windows per batch
    stream_sizes: tuple[int, ...]  # coded bytes of each batch
    header_size: int  # bytes before the first stream

    @property
    def compressed_size(self) -> int:
        return self.header_size + sum(self.stream_sizes)


# --- what the model is told before each window ------------------------------------------------------

def guess_modality(data: bytes) -> Modality:
    """The modality of `data` if one modality covers nearly all of it, else BINARY (no tag)."""
    if not data:
        return Modality.BINARY
    from omnibyte.detector import ModalityDetector

    segments = ModalityDetector(use_libmagic=False).detect_bytes(data)
    largest = max(segments, key=lambda s: s.size)
    if largest.modality in MODALITY_TAGS and largest.size >= TAG_COVERAGE * len(data):
        return largest.modality
    return Modality.BINARY


def prefix_tokens(modality: Modality) -> list[int]:
    """What every window is coded after: the document layout's start with the modality's tag,
    or DOC_START alone for BINARY, which has no tag."""
    return document_tokens([(modality if modality in MODALITY_TAGS else None, b"")])


# --- the model's identity ---------------------------------------------------------------------------

def model_fingerprint(model: BytePredictor) -> bytes:
    """The first bytes of SHA-256 over the config and every weight as the model computes with it.

    Tensors are hashed in name order with their dtype and shape, so the same checkpoint loaded
    twice gives the same fingerprint and any changed weight gives another.
    """
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.digest()[:FINGERPRINT_BYTES]


# --- probabilities, identically on both sides --------------------------------------------------------

def quantise(probs: np.ndarray) -> np.ndarray:
    """Probabilities (R, 256) -> integer frequencies (R, 256) as float64, each at least 1.

    float64 holds these integers exactly, and constriction rescales them to its own fixed-point
    grid deterministically, so the same probabilities always give the same code.
    """
    return np.floor(probs.astype(np.float64) * FREQ_SCALE) + 1.0


def _code_windows(model: BytePredictor, prefix: Sequence[int], lengths: Sequence[int],
                  symbols_for_step: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                  form: ContainerFormat) -> None:
    """Run a batch of windows one byte per step; the callback codes each step's bytes.

    `lengths` are the windows' sizes in bytes. At step t, `symbols_for_step(t, active, freqs)`
    gets the rows still inside their window and their frequencies (len(active), 256) and
    returns their bytes at t (the encoder's real bytes, or what the decoder just decoded);
    those are fed back for step t + 1. Finished rows are fed byte 0 so the batch keeps its
    shape: what the other rows see never depends on them. Every step, the prefix's included,
    runs on the container's path (`form.steps`).
    """
    rows, steps = len(lengths), max(lengths)
    if form.steps == "deterministic":
        check_float_environment()
        step = DeterministicStep(model, batch_size=rows, max_positions=len(prefix) + steps)
        for pos, token in enumerate(prefix):
            logits = step(np.full(rows, token, dtype=np.int64), pos)  # (rows, vocab)
        lengths_arr = np.asarray(lengths)
        for t in range(steps):
            active = np.flatnonzero(lengths_arr > t)
            step_bytes = np.zeros(rows, dtype=np.int64)
            # bytes only: control tokens never occur inside a file
            step_bytes[active] = symbols_for_step(t, active, byte_frequencies(logits[active], FREQ_SCALE))
            if t + 1 < steps:
                logits = step(step_bytes, len(prefix) + t)
        return
    _code_windows_float(model, prefix, lengths, symbols_for_step, form.steps == "compiled")


def _code_windows_float(model: BytePredictor, prefix: Sequence[int], lengths: Sequence[int],
                        symbols_for_step: Callable[[int, np.ndarray, np.ndarray], np.ndarray], compiled: bool) -> None:
    """`_code_windows` for versions 1 to 4: the compiled step (2 and 4) or PyTorch (1 and 3)
    on the model's own KV cache, frequencies by `quantise`."""
    rows, steps = len(lengths), max(lengths)
    device = model.tok_embeddings.weight.device
    lengths_arr = np.asarray(lengths)
    # cache sized by the header's numbers, never by the machine: both sides allocate the same
    model.setup_kv_cache(batch_size=rows, max_seq_len=len(prefix) + steps)
    try:
        with torch.inference_mode():
            if compiled:
                step = CompiledDecodeStep(model)
                for pos, token in enumerate(prefix):
                    logits = step(np.full(rows, token, dtype=np.int64), pos)  # (rows, vocab)
            else:
                start = torch.tensor([list(prefix)] * rows, dtype=torch.long, device=device)
                logits = model(start, start_pos=0, last_only=True)[:, -1]  # (rows, vocab)
            for t in range(steps):
                # bytes only: control tokens never occur inside a file
                probs = _byte_probs(logits)  # (rows, 256)
                active = np.flatnonzero(lengths_arr > t)
                step_bytes = np.zeros(rows, dtype=np.int64)
                step_bytes[active] = symbols_for_step(t, active, quantise(probs[active]))
                if t + 1 < steps:
                    if compiled:
                        logits = step(step_bytes, len(prefix) + t)
                    else:
                        token = torch.from_numpy(step_bytes).to(device)[:, None]  # (rows, 1)
                        logits = model(token, start_pos=len(prefix) + t)[:, -1]
    finally:
        model.clear_kv_cache()


def _byte_probs(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Softmax over the 256 byte values of each row, as float64 NumPy."""
    if isinstance(logits, torch.Tensor):  # the PyTorch path's exact arithmetic, kept for its files
        return torch.softmax(logits[:, :BYTE_VALUES], dim=-1).cpu().numpy()
    logits = logits[:, :BYTE_VALUES].astype(np.float64)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return probs / probs.sum(axis=-1, keepdims=True)


def _batches(original_size: int, window_size: int, rows: int) -> list[list[tuple[int, int]]]:
    """[start, end) of every window, grouped into batches of `rows` consecutive windows."""
    windows = [(s, min(s + window_size, original_size)) for s in range(0, original_size, window_size)]
    return [windows[i:i + rows] for i in range(0, len(windows), rows)]


def _rows_per_batch(model: BytePredictor, window_size: int, windows: int) -> int:
    per_row = model.config.kv_cache_bytes_per_token * (window_size + 2)
    return max(1, min(MAX_ROWS, windows, KV_CACHE_BUDGET // per_row))


def _encode_batch(model: BytePredictor, prefix: list[int], payload: np.ndarray, windows: list[tuple[int, int]],
                  progress: Callable[[int], None], form: ContainerFormat) -> bytes:
    family = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    starts = np.array([s for s, _ in windows])

    def encode_step(t: int, active: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        symbols = payload[starts[active] + t].astype(np.int32)
        encoder.encode(symbols, family, freqs)
        progress(len(active))
        return symbols

    _code_windows(model, prefix, [e - s for s, e in windows], encode_step, form)
    if form.short_end:
        return _stream_bytes(encoder)
    return encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def _decode_batch(model: BytePredictor, prefix: list[int], stream: bytes, windows: list[tuple[int, int]],
                  out: np.ndarray, progress: Callable[[int], None], form: ContainerFormat) -> None:
    family = constriction.stream.model.Categorical(perfect=False)
    decoder = constriction.stream.queue.RangeDecoder(_bytes_to_words(stream, big_endian=form.short_end))
    starts = np.array([s for s, _ in windows])

    def decode_step(t: int, active: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        try:
            symbols = np.asarray(decoder.decode(family, freqs), dtype=np.int64)
        except Exception as exc:  # constriction reports damaged streams with its own types
            raise OmniByteError(f"compressed data is corrupt: the range decoder failed ({exc})") from None
        out[starts[active] + t] = symbols
        progress(len(active))
        return symbols

    _code_windows(model, prefix, [e - s for s, e in windows], decode_step, form)


def _stream_bytes(encoder: constriction.stream.queue.RangeEncoder) -> bytes:
    """The coded stream, ended at the shortest whole byte that still decodes to the same bytes.

    Read as one big number, a range-coded stream decodes correctly whenever it falls inside
    the coder's final interval [lower, lower + span) (in the last two words' place), and the
    decoder reads missing words as zeros. constriction's seal writes the interval's first
    multiple of 2**32, a whole word more than needed on average; here the point is the interval's
    multiple of the largest power of two, written big-endian so that its zero low bits are
    trailing zero bytes, which are dropped (the header holds the length). That saves about two
    bytes per stream, which on a small, predictable file (a 2 KB video coded in 80 bytes) is
    the difference between 2.6% and under 1% above the model's own estimate.
    """
    words = encoder.get_compressed()
    position, (lower, span) = encoder.pos()  # words before the final 64-bit state, and the state
    if not position + 1 <= len(words) <= position + 2:  # not constriction's layout: keep its seal
        return words.astype(">u4").tobytes().rstrip(b"\0")
    # the sealed stream as a number whose last two words are the state's place
    sealed = int.from_bytes(words.astype(">u4").tobytes(), "big") << 32 * (position + 2 - len(words))
    seal_point = lower + (sealed - lower) % 2**64  # constriction's point, a carry into the words kept
    for zero_bits in range(64, -1, -1):
        point = -(-lower >> zero_bits) << zero_bits  # the interval's first multiple of 2**zero_bits
        if point < lower + span:
            break
    shortest = sealed - seal_point + point  # a carry out of the state's place lands in the words
    return shortest.to_bytes(4 * (position + 2), "big").rstrip(b"\0")


def _bytes_to_words(stream: bytes, big_endian: bool) -> np.ndarray:
    # dropped trailing zero bytes come back as zeros, as the decoder reads them anyway
    padded = stream + b"\0" * (-len(stream) % 4)
    return np.frombuffer(padded, dtype=">u4" if big_endian else "<u4").astype(np.uint32)


# --- the container -----------------------------------------------------------------------------------

def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _HeaderReader:
    def __init__(self, blob: bytes) -> None:
        self.blob, self.pos = blob, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.blob):
            raise OmniByteError(f"compressed file is truncated: its header ends after {len(self.blob)} bytes")
        chunk = self.blob[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise OmniByteError("compressed file is corrupt: a header number is too long")


def read_header(blob: bytes) -> ContainerHeader:
    """Parse and check a compressed file's header (not its streams, not the model)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise OmniByteError(f"expected the compressed file's bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        raise OmniByteError("not an OmniByte compressed file (it does not start with 'OMB')")
    reader = _HeaderReader(blob)
    reader.take(len(MAGIC))
    version = reader.take(1)[0]
    if version not in READABLE_VERSIONS:
        raise OmniByteError(f"compressed file has container version {version}; this OmniByte reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))}")
    fingerprint = reader.take(FINGERPRINT_BYTES)
    checksum = struct.unpack("<I", reader.take(4))[0]
    tag = reader.take(1)[0]
    original_size, window_size, rows = reader.uvarint(), reader.uvarint(), reader.uvarint()
    if tag > len(_TAGGED) or original_size > MAX_ORIGINAL_BYTES or window_size < 1 or not 1 <= rows <= MAX_ROWS:
        raise OmniByteError("compressed file is corrupt: its header holds impossible values")
    batch_count = -(-original_size // (window_size * rows))
    stream_sizes = tuple(reader.uvarint() for _ in range(batch_count))
    header_end = reader.pos
    stored_check = reader.take(2)
    if stored_check != _header_check(blob[:header_end]):
        raise OmniByteError("compressed file is corrupt: its header fails its check")
    header = ContainerHeader(version, fingerprint, checksum, _TAGGED[tag - 1] if tag else Modality.BINARY,
                             original_size, window_size, rows, stream_sizes, reader.pos)
    if len(blob) < header.compressed_size:
        raise OmniByteError(f"compressed file is truncated: {len(blob):,} bytes of the {header.compressed_size:,} "
                            "its header declares")
    if len(blob) > header.compressed_size:
        raise OmniByteError(f"compressed file is corrupt: {len(blob) - header.compressed_size:,} unexpected bytes "
                            "after its data")
    return header


def _header_check(header: bytes) -> bytes:
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF)


# --- the two entry points ------------------------------------------------------------------------

def compress_bytes(model: BytePredictor, data: bytes, modality: Modality | None = None,
                   progress: ProgressCallback | None = None, version: int | None = None) -> bytes:
    """`data` compressed with `model` into a self-describing container.

    `modality` picks the tag each window is coded after: None guesses it from the bytes (the
    detector; no tag unless one modality covers 90% of the file), BINARY codes with no tag.
    `progress(done, total)` is called as bytes are coded. `version` is for tests of older
    containers; None writes the current one.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OmniByteError(f"expected bytes to compress, got {type(data).__name__}")
    data = bytes(data)
    if version is not None and version not in FORMATS:
        raise OmniByteError(f"no container version {version}; there are {', '.join(map(str, FORMATS))}")
    if version is not None and FORMATS[version].steps == "compiled" and not compiled_decode_supported(model):
        raise OmniByteError(f"container version {version} needs the compiled CPU decoding step: "
                            "the model must be float32 on a CPU")
    if modality is None:
        modality = guess_modality(data)
    modality = Modality(modality)
    prefix = prefix_tokens(modality)
    window_size = model.config.max_seq_len - len(prefix)
    windows = -(-len(data) // window_size)
    rows = _rows_per_batch(model, window_size, windows)
    payload = np.frombuffer(data, dtype=np.uint8)
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], len(data))

    version = VERSION if version is None else version
    form = FORMATS[version]
    streams = [_encode_batch(model, prefix, payload, batch, advance, form)
               for batch in _batches(len(data), window_size, rows)]
    tag = _TAGGED.index(modality) + 1 if modality in _TAGGED else 0
    header = (MAGIC + bytes([version]) + model_fingerprint(model) + struct.pack("<I", zlib.crc32(data))
              + bytes([tag]) + _uvarint(len(data)) + _uvarint(window_size) + _uvarint(rows)
              + b"".join(_uvarint(len(s)) for s in streams))
    return header + _header_check(header) + b"".join(streams)


def decompress_bytes(model: BytePredictor, blob: bytes, progress: ProgressCallback | None = None) -> bytes:
    """The original bytes of a `compress_bytes` container, checked against its CRC-32.

    Raises OmniByteError, and returns nothing, when the container is damaged or truncated, was
    made with another model, or decodes to bytes that fail the checksum.
    """
    header = read_header(blob)
    ours = model_fingerprint(model)
    if header.model_fingerprint != ours:
        raise OmniByteError(f"this file was compressed with another model (fingerprint "
                            f"{header.model_fingerprint.hex()}; this model's is {ours.hex()}): decompress it "
                            "with the checkpoint that compressed it")
    form = FORMATS[header.version]
    if form.steps == "compiled" and not compiled_decode_supported(model):
        raise OmniByteError(f"this file was coded with the compiled CPU decoding step (container version "
                            f"{header.version}): decompress it with the model in float32 on a CPU")
    prefix = prefix_tokens(header.modality)
    if header.window_size + len(prefix) > model.config.max_seq_len:
        raise OmniByteError("compressed file is corrupt: its windows are longer than the model's context")
    out = np.zeros(header.original_size, dtype=np.uint8)
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], header.original_size)

    offset = header.header_size
    batches = _batches(header.original_size, header.window_size, header.rows)
    for batch, size in zip(batches, header.stream_sizes):
        _decode_batch(model, prefix, bytes(blob[offset:offset + size]), batch, out, advance, form)
        offset += size
    data = out.tobytes()
    if zlib.crc32(data) != header.checksum:
        if form.steps == "deterministic":
            raise OmniByteError("decompressed bytes fail the original's checksum: the compressed file is corrupt; "
                                "nothing was recovered")
        raise OmniByteError("decompressed bytes fail the original's checksum: the compressed file is corrupt, or "
                            "this machine computes the model differently from the one that compressed it "
                            f"(container version {header.version}, from an earlier release, depends on the CPU, "
                            "PyTorch or Numba version, or thread count); nothing was recovered")
    return data
