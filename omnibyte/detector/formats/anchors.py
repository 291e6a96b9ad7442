"""Where files start: every anchor (a byte string at a known offset from a file's start) found
in one pass, each candidate read by its format's parser, and the results put in order."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from omnibyte.detector.formats.audio import parse_au, parse_flac, parse_mp3, parse_ogg
from omnibyte.detector.formats.base import Found, cut_found
from omnibyte.detector.formats.binaries import (
    MAGIC_ONLY,
    magic_only,
    parse_ar,
    parse_elf,
    parse_gzip,
    parse_mo,
    parse_npy,
    parse_pdf,
    parse_pickle,
    parse_pyc,
    parse_sfnt,
    parse_sqlite,
    parse_tar,
    parse_typelib,
    parse_woff,
    parse_zip,
)
from omnibyte.detector.formats.images import parse_bmp, parse_gif, parse_jpeg, parse_png, parse_pnm, parse_tiff
from omnibyte.detector.formats.riff import parse_iff, parse_rf64, parse_riff
from omnibyte.detector.formats.video import parse_ebml, parse_mp4, parse_y4m, parse_y4m_frames

__all__ = ["find_formats"]

_Parser = Callable[[bytes, int], "Found | None"]

_ANCHORS: list[tuple[bytes, int, _Parser]] = [
    (b"BM", 0, parse_bmp),
    (b"\x28\x00\x00\x00", 14, parse_bmp),
    (b"\x7c\x00\x00\x00", 14, parse_bmp),
    (b"\x89PNG", 0, parse_png),
    (b"\r\n\x1a\n", 4, parse_png),
    (b"IHDR", 12, parse_png),
    (b"\xff\xd8\xff", 0, parse_jpeg),
    (b"JFIF\x00", 6, parse_jpeg),
    (b"Exif\x00\x00", 6, parse_jpeg),
    (b"GIF8", 0, parse_gif),
    (b"GIF", 0, parse_gif),
    (b"F89a", 2, parse_gif),
    (b"F87a", 2, parse_gif),
    (b"89a", 3, parse_gif),
    (b"87a", 3, parse_gif),
    (b"II*", 0, parse_tiff),
    (b"I*\x00", 1, parse_tiff),
    (b"*\x00\x08\x00", 2, parse_tiff),
    (b"MM\x00", 0, parse_tiff),
    (b"M\x00*", 1, parse_tiff),
    (b"\x00*\x00\x00", 2, parse_tiff),
    (b"P6\n", 0, parse_pnm),
    (b"P5\n", 0, parse_pnm),
    (b"P4\n", 0, parse_pnm),
    (b"P6 ", 0, parse_pnm),
    (b"P5 ", 0, parse_pnm),
    (b"RIFF", 0, parse_riff),
    (b"WAVEfmt ", 8, parse_riff),
    (b"RF64", 0, parse_rf64),
    (b"AVI LIST", 8, parse_riff),
    (b"WEBPVP8", 8, parse_riff),
    (b"FORM", 0, parse_iff),
    (b"AIFFCOMM", 8, parse_iff),
    (b"AIFCFVER", 8, parse_iff),
    (b".snd", 0, parse_au),
    (b".sn", 0, parse_au),
    (b"snd\x00\x00\x00", 1, parse_au),
    (b"d\x00\x00\x00", 3, parse_au),
    (b"fLaC", 0, parse_flac),
    (b"\x00\x00\x22", 5, parse_flac),
    (b"OggS", 0, parse_ogg),
    (b"gS\x00\x02", 2, parse_ogg),
    (b"ID3", 0, parse_mp3),
    (b"D3\x03\x00", 1, parse_mp3),
    (b"D3\x04\x00", 1, parse_mp3),
    (b"\xff\xfb", 0, parse_mp3),
    (b"\xff\xfa", 0, parse_mp3),
    (b"\xff\xf3", 0, parse_mp3),
    (b"\xff\xf2", 0, parse_mp3),
    (b"\xff\xe3", 0, parse_mp3),
    (b"\xff\xe2", 0, parse_mp3),
    (b"YUV4", 0, parse_y4m),
    (b"MPEG2 ", 4, parse_y4m),
    (b"FRAME\n", 0, parse_y4m_frames),
    (b"ftyp", 4, parse_mp4),
    (b"isom", 8, parse_mp4),
    (b"\x1aE\xdf\xa3", 0, parse_ebml),
    (b"B\x86\x81\x01B\xf7", 5, parse_ebml),
    (b"\x7fELF", 0, parse_elf),
    (b"ELF\x02\x01\x01", 1, parse_elf),
    (b"ELF\x01\x01\x01", 1, parse_elf),
    (b"PK\x03", 0, parse_zip),
    (b"K\x03\x04", 1, parse_zip),
    (b"PK", 0, parse_zip),
    (b"\x1f\x8b\x08", 0, parse_gzip),
    (b"\x8b\x08\x00", 1, parse_gzip),
    (b"\x8b\x08\x08", 1, parse_gzip),
    (b"%PDF", 0, parse_pdf),
    (b"DF-1.", 2, parse_pdf),
    (b"-1.", 4, parse_pdf),
    (b"SQLite f", 0, parse_sqlite),
    (b"format 3\x00", 7, parse_sqlite),
    *((magic, 0, magic_only(fmt)) for fmt, (magic, _) in MAGIC_ONLY.items()),
    # compiled Python: the version number's high byte (3.x: 0x0B-0x0F; 2.7: 0xF3), then CR LF
    *((bytes([high]) + b"\r\n", 1, parse_pyc) for high in (0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0xF3)),
    (b"\xde\x12\x04\x95", 0, parse_mo),
    (b"\x95\x04\x12\xde", 0, parse_mo),
    (b"!<arch>\n", 0, parse_ar),
    (b"ustar", 257, parse_tar),
    (b"\x00\x01\x00\x00\x00", 0, parse_sfnt),
    (b"OTTO\x00", 0, parse_sfnt),
    (b"true\x00", 0, parse_sfnt),
    (b"wOFF", 0, parse_woff),
    (b"wOF2", 0, parse_woff),
    (b"\x93NUMPY", 0, parse_npy),
    # pickles of protocol 2 and 3 by their first opcode (a dict, a list, a global, a mark), 4 and 5 by a frame
    *((b"\x80" + bytes([proto]) + op, 0, parse_pickle) for proto in (2, 3) for op in (b"}", b"]", b"c", b"(")),
    (b"\x80\x04\x95", 0, parse_pickle),
    (b"\x80\x05\x95", 0, parse_pickle),
    (b"GOBJ\nMETADATA", 0, parse_typelib),
]
_PRIORITY = {parser: i for i, (_, _, parser) in enumerate(_ANCHORS)}


def _key_offset(anchor: bytes) -> int:
    """Which two bytes of an anchor to look up: the pair least like filler (0x00, 0xFF), so that
    runs of zeros do not light up every anchor that contains two of them."""
    return min(range(len(anchor) - 1), key=lambda k: sum(b in (0, 0xFF) for b in anchor[k:k + 2]))


def _anchor_table() -> tuple[np.ndarray, dict[int, list[int]]]:
    table = np.zeros(1 << 16, dtype=bool)
    by_key: dict[int, list[int]] = {}
    for i, (anchor, _, _) in enumerate(_ANCHORS):
        k = _key_offset(anchor)
        key = anchor[k] | anchor[k + 1] << 8
        table[key] = True
        by_key.setdefault(key, []).append(i)
    return table, by_key


_TABLE, _BY_KEY = _anchor_table()
_KEY_AT = [_key_offset(anchor) for anchor, _, _ in _ANCHORS]


def _candidates(data: bytes) -> list[tuple[int, int]]:
    """(start, anchor index) of every anchor occurrence, by a two-byte table lookup over the
    whole input and a vectorised check of each anchor's remaining bytes."""
    n = len(data)
    if n < 2:
        return []
    even = np.frombuffer(data, dtype="<u2", count=n // 2)
    odd = np.frombuffer(data, dtype="<u2", count=(n - 1) // 2, offset=1)
    pos = np.concatenate([np.flatnonzero(_TABLE[even]) * 2, np.flatnonzero(_TABLE[odd]) * 2 + 1])
    if pos.size == 0:
        return []
    arr = np.frombuffer(data, dtype=np.uint8)
    keys = arr[pos].astype(np.int64) | arr[pos + 1].astype(np.int64) << 8
    out: list[tuple[int, int]] = []
    order = np.argsort(keys, kind="stable")
    keys, pos = keys[order], pos[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [keys.size]))):
        for i in _BY_KEY[int(keys[lo])]:
            anchor, offset, _ = _ANCHORS[i]
            at = pos[lo:hi] - _KEY_AT[i]  # where the anchor itself starts
            hit = at[(at >= 0) & (at + len(anchor) <= n)]
            for k in range(len(anchor)):
                if hit.size == 0:
                    break
                if k != _KEY_AT[i] and k != _KEY_AT[i] + 1:
                    hit = hit[arr[hit + k] == anchor[k]]
            out.extend((int(p) - offset, i) for p in hit if p >= offset)
    return out


def _parse(data: bytes, start: int, parser: _Parser) -> Found | None:
    try:
        found = parser(data, start)
    except (struct.error, IndexError, ValueError, KeyError, OverflowError, MemoryError, zlib.error):
        return None
    if found is None or found.end <= found.start:
        return None
    return found


def find_formats(data: bytes) -> list[Found]:
    """Every file a signature finds in `data`, in order, none overlapping.

    Candidates are taken by start offset. One starting inside an earlier file's verified
    structure is part of it (a JPEG inside a PDF, a PNG stored in a ZIP); one starting in an
    earlier file's unverified tail cuts that tail if its own header is sound.
    """
    by_start: dict[int, set[_Parser]] = {}
    for start, i in _candidates(data):
        by_start.setdefault(start, set()).add(_ANCHORS[i][2])
    accepted: list[Found] = []
    for start in sorted(by_start):
        last = accepted[-1] if accepted else None
        if last is not None and start < last.solid:
            continue
        results = [f for p in sorted(by_start[start], key=_PRIORITY.__getitem__) if (f := _parse(data, start, p))]
        if not results:
            continue
        found = max(results, key=lambda f: (f.strong, f.confidence, f.end - f.start))
        if last is not None and found.start < last.end <= start:
            found = replace(found, start=last.end)
        if last is not None and start < last.end:
            if not found.strong:
                continue
            accepted[-1] = cut_found(last, start, f"ends where a {found.format} starts")
        accepted.append(found)
    return accepted
