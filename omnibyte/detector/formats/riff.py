"""RIFF and IFF containers: WAV, AVI, WebP (RIFF, little-endian sizes) and AIFF (IFF, big-endian)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from omnibyte.detector.formats.base import (
    BAD_FIELD,
    BAD_SIZE,
    DAMAGED_MAGIC,
    U32BE,
    U32LE,
    Found,
    Report,
    mismatches,
    printable4,
)
from omnibyte.modality import Modality

_RIFF_FORMS = {b"WAVE": ("wav", Modality.AUDIO), b"AVI ": ("avi", Modality.VIDEO), b"WEBP": ("webp", Modality.IMAGE)}
_RIFF_KNOWN = {b"data", b"LIST", b"movi", b"idx1", b"JUNK", b"VP8 ", b"VP8L", b"VP8X", b"ANMF", b"fmt "}
_IFF_FORMS = {b"AIFF": ("aiff", Modality.AUDIO), b"AIFC": ("aiff", Modality.AUDIO)}
_IFF_KNOWN = {b"SSND", b"COMM", b"FVER"}


def _walk_chunks(data: bytes, pos: int, limit: int, size_of: struct.Struct, known: set[bytes]
                 ) -> tuple[list[tuple[bytes, int, int]], int, bool]:
    """Chunks from pos: [(id, offset, size)], where the walk stopped, and whether the last chunk
    ran past the data (a cut-short file) rather than ending at something that is not a chunk."""
    n, chunks = len(data), []
    while pos + 8 <= n and pos < limit:
        cid = data[pos:pos + 4]
        if not printable4(cid):
            break
        size = size_of.unpack_from(data, pos + 4)[0]
        stop = pos + 8 + size + (size & 1)
        if stop > n and cid not in known:
            break  # text or noise read as a chunk: the file ended at pos
        chunks.append((cid, pos, size))
        if stop > n:
            return chunks, stop, True
        pos = stop
    return chunks, pos, False


def _fuzzy_form(form: bytes, forms: dict) -> bytes | None:
    if form in forms:
        return form
    near = [f for f in forms if sum(a != b for a, b in zip(f, form)) == 1]
    return near[0] if len(near) == 1 else None


@dataclass(frozen=True)
class _Container:
    """What tells RIFF and IFF apart: the magic, the byte order of sizes, the form types."""

    magic: bytes
    size_of: struct.Struct
    forms: dict[bytes, tuple[str, Modality]]
    known: set[bytes]  # chunk ids trusted even when their size runs past the data
    payload: bytes  # the chunk of raw samples
    header: int  # bytes of that chunk's header before the samples (SSND has an offset and a block size)
    vouched: bytes | None  # a chunk whose presence confirms a damaged form type (an AIFF's COMM)


_RIFF = _Container(b"RIFF", U32LE, _RIFF_FORMS, _RIFF_KNOWN, b"data", 8, None)
_IFF = _Container(b"FORM", U32BE, _IFF_FORMS, _IFF_KNOWN, b"SSND", 16, b"COMM")


def _parse_container(data: bytes, start: int, kind: _Container
                     ) -> tuple[Report, str, Modality, list[tuple[bytes, int, int]], int, int, int] | None:
    """The header and chunks of a RIFF or IFF file: (report, format, modality, chunks, end,
    solid, magic damage), or None when it is not one. End and solid weigh the declared size
    against where the chunk walk stopped."""
    n = len(data)
    if start + 20 > n:
        return None
    name = kind.magic.decode()
    r = Report(f"{name} chunks")
    bad = mismatches(data, start, kind.magic)
    form = _fuzzy_form(data[start + 8:start + 12], kind.forms)
    if form is None or bad > 1:
        return None
    if bad:
        r.damage(f"{name} magic damaged", DAMAGED_MAGIC)
    fmt, modality = kind.forms[form]
    declared = start + 8 + kind.size_of.unpack_from(data, start + 4)[0]
    chunks, walked, overran = _walk_chunks(data, start + 12, min(declared, n), kind.size_of, kind.known)
    if not chunks or kind.vouched is not None and kind.vouched not in [c[0] for c in chunks]:
        return None
    if form != data[start + 8:start + 12] and kind.vouched is None:
        r.damage("form type damaged", DAMAGED_MAGIC)
    if declared in (walked, walked + 1, walked - 1) and not overran:
        end = solid = declared
    elif overran:
        # the last chunk's size runs past the data: cut short, or that size field is wrong
        last = chunks[-1]
        end, solid = walked, last[1] + 8
        if last[1] < declared < walked:
            r.damage(f"chunk size runs past the {name} size", BAD_SIZE)
            end = declared
    else:
        # chunks stop before the declared size: a chunk size is wrong, or the declared size is
        if declared > n:
            r.damage(f"{name} size runs past the data", BAD_SIZE)
        else:
            r.damage(f"{name} size {declared - start - 8} but chunks end at {walked - start}", BAD_SIZE)
        end, solid = (declared if walked < declared <= n else walked), walked
    # the sample payload is raw bytes: only the headers before it are verified
    payload = next((off + kind.header for cid, off, _ in chunks if cid == kind.payload), None)
    if payload is not None:
        solid = min(solid, payload)
    return r, fmt, modality, chunks, end, solid, bad


def parse_riff(data: bytes, start: int) -> Found | None:
    parsed = _parse_container(data, start, _RIFF)
    if parsed is None:
        return _riff_cut_before_chunks(data, start)
    r, fmt, modality, chunks, end, solid, bad = parsed
    if fmt == "wav":
        _check_wav(r, data, chunks)
    elif fmt == "avi" and b"LIST" not in [c[0] for c in chunks]:
        r.damage("no LIST chunk", BAD_FIELD)
    return r.found(fmt, modality, start, end, solid, len(data), strong=bad == 0 and r.confidence >= 0.9)


def parse_iff(data: bytes, start: int) -> Found | None:
    parsed = _parse_container(data, start, _IFF)
    if parsed is None:
        return None
    r, fmt, modality, _, end, solid, bad = parsed
    return r.found(fmt, modality, start, end, solid, len(data), strong=bad == 0)


def _check_wav(r: Report, data: bytes, chunks: list[tuple[bytes, int, int]]) -> None:
    fmt = next((off for cid, off, size in chunks if cid == b"fmt " and size >= 16), None)
    if fmt is None:
        r.damage("no fmt chunk", BAD_FIELD)
        return
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, fmt + 8)
    if tag not in (1, 2, 3, 6, 7, 0x11, 0x55, 0xFFFE) or not 0 < channels <= 32 or not 100 <= rate <= 768000 \
            or bits not in (0, 4, 8, 16, 24, 32, 64):
        r.damage("implausible fmt fields", BAD_FIELD)
    r.notes[0] = f"RIFF/WAVE, {bits}-bit, {channels} ch, {rate} Hz"
    if not any(cid == b"data" for cid, _, _ in chunks):
        r.damage("no data chunk", BAD_FIELD)


def parse_rf64(data: bytes, start: int) -> Found | None:
    """RF64, the WAV of more than 4 GiB: its 32-bit sizes say 0xFFFFFFFF and a ds64 chunk right
    after the form type holds the real, 64-bit ones."""
    n = len(data)
    r = Report("RF64 ds64 sizes")
    if data[start:start + 4] != b"RF64" or data[start + 8:start + 16] != b"WAVEds64" or start + 28 > n:
        return None
    riff_size = struct.unpack_from("<Q", data, start + 20)[0]
    if riff_size < 28:
        return None
    end = start + 8 + riff_size
    return r.found("wav", Modality.AUDIO, start, end, min(end, start + 36), n, strong=True)


def _riff_cut_before_chunks(data: bytes, start: int) -> Found | None:
    """A RIFF file cut before its first chunk is whole: an intact magic and form type are all
    that is left of it to read."""
    n = len(data)
    form = data[start + 8:start + 12]
    if not start + 12 <= n < start + 20 or data[start:start + 4] != b"RIFF" or form not in _RIFF_FORMS:
        return None
    fmt, modality = _RIFF_FORMS[form]
    r = Report("RIFF header")
    return r.found(fmt, modality, start, start + 8 + U32LE.unpack_from(data, start + 4)[0], n, n, strong=False)

