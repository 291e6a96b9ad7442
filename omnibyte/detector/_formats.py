"""Format signatures at any offset, and the extent each header declares or its structure shows.

Every format has anchors: byte strings at a known offset from the start of a file. The primary
magic is one; others sit further in (`WAVEfmt ` at 8, `IHDR` at 12, a BMP's info-header size at
14) so that a file whose magic byte was flipped is still found. A parser then reads the header
at the candidate start, checks what it can, and says where the file ends:

- walked structure (PNG chunks with their CRCs, RIFF/IFF chunks, JPEG markers to EOI, GIF
  blocks, Ogg pages, MP3 frames, Y4M frames, MP4 boxes, EBML elements, zlib streams, ...) is
  trusted up to `solid`;
- past `solid`, the extent only rests on a size field (a BMP's pixel rows, a WAV's data size,
  the last Y4M frame) and may be cut by what the bytes there turn out to be.

Parsers never raise: the caller treats any exception as "not this format here".
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..modality import Modality

__all__ = ["Found", "find_formats", "cut_found"]

_U16LE, _U32LE, _I32LE = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<i")
_U16BE, _U32BE, _U64BE = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q")

# what each rule is worth: a signature with its structure walked to the end is near-certain; every
# sign of damage takes some of it away, but the format is still the best explanation of the bytes
_CERTAIN = 0.99
_DAMAGED_MAGIC = 0.12
_BAD_FIELD = 0.06
_BAD_SIZE = 0.08
_CUT_SHORT = 0.06
_FLOOR = 0.35


@dataclass(frozen=True)
class Found:
    format: str
    modality: Modality
    start: int
    end: int  # exclusive, never past the data
    confidence: float
    reason: str
    solid: int  # structure verified up to here; [solid, end) rests on a size field only
    strong: bool  # intact magic and a valid header: enough to cut another file's declared tail


def cut_found(found: Found, end: int, why: str) -> Found:
    """`found` ending at `end` instead, because of what the bytes at `end` are."""
    end = max(found.start + 1, min(end, found.end))
    return replace(found, end=end, solid=min(found.solid, end), reason=f"{found.reason}; {why}",
                   confidence=round(max(_FLOOR, found.confidence - _CUT_SHORT), 3))


class _Report:
    """Collects the damage a parser sees and turns it into a confidence and a reason."""

    def __init__(self, what: str):
        self.notes = [what]
        self.confidence = _CERTAIN

    def damage(self, note: str, cost: float) -> None:
        self.notes.append(note)
        self.confidence -= cost

    def found(self, fmt: str, modality: Modality, start: int, end: int, solid: int, n: int,
              strong: bool) -> Found:
        if end > n:
            self.damage(f"cut short at {n - start} of {end - start} bytes", _CUT_SHORT)
            end = n
        end = max(end, start + 1)
        # only an undamaged header is trusted to end another file's unverified tail
        intact = all(note.startswith("cut short") for note in self.notes[1:])
        return Found(fmt, modality, start, end, round(max(_FLOOR, self.confidence), 3), "; ".join(self.notes),
                     max(start, min(solid, end)), strong and intact)


def _mismatches(data: bytes, start: int, magic: bytes) -> int:
    got = data[start:start + len(magic)]
    return sum(a != b for a, b in zip(got, magic)) + len(magic) - len(got)


def _magic(report: _Report, data: bytes, start: int, magic: bytes, name: str) -> int:
    bad = _mismatches(data, start, magic)
    if bad:
        report.damage(f"{name} magic damaged ({bad} byte{'s' * (bad > 1)})", _DAMAGED_MAGIC * bad)
    return bad


def _printable4(b: bytes) -> bool:
    return len(b) == 4 and all(32 <= c < 127 for c in b)


# ---------------------------------------------------------------------------------------------
# images


_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}


def _parse_bmp(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 30 > n:
        return None
    r = _Report("BMP header")
    bad_magic = _magic(r, data, start, b"BM", "BM")
    size, reserved, offset, dib = struct.unpack_from("<IIII", data, start + 2)
    if dib == 12:
        w, h, planes, bpp = struct.unpack_from("<HHHH", data, start + 18)
        compression, colours = 0, 0
    else:
        w, h, planes, bpp, compression = struct.unpack_from("<iiHHI", data, start + 18)
        colours = _U32LE.unpack_from(data, start + 46)[0] if start + 50 <= n else 0
    checks = {
        "info-header size": dib in _BMP_DIB_SIZES,
        "planes": planes == 1,
        "bits per pixel": bpp in (1, 4, 8, 16, 24, 32),
        "width": 0 < w <= 1 << 16,
        "height": 0 < abs(h) <= 1 << 16,
        "compression": compression in (0, 1, 2, 3, 4, 5, 6),
        "reserved": reserved == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if bad_magic + len(failed) > 2 or not (checks["info-header size"] or not bad_magic):
        return None
    if not (checks["width"] and checks["height"] and checks["bits per pixel"]):
        return None  # without the layout there is no way to tell where it ends
    for name in failed:
        r.damage(f"bad {name}", _BAD_FIELD)
    palette = (colours or (1 << bpp if bpp <= 8 else 0)) * (3 if dib == 12 else 4)
    header_end = 14 + (dib if dib in _BMP_DIB_SIZES else 40)
    if not (header_end <= offset <= header_end + palette + 1024):
        r.damage(f"pixel offset {offset} implausible", _BAD_FIELD)
        offset = header_end + min(palette, 1024)
    rows = abs(h) * ((w * bpp + 31) // 32 * 4)
    computed = offset + rows
    if compression in (1, 2, 4, 5):  # compressed pixels: only the size fields know
        computed = size if offset < size <= 1 << 28 else computed
    if size != computed and not (0 <= size - computed <= 4):
        r.damage(f"file-size field {size} disagrees with the {computed} bytes the header implies", _BAD_SIZE)
    # pixel rows are raw bytes: nothing in them can confirm the extent, so only the header is solid
    return r.found("bmp", Modality.IMAGE, start, start + computed, start + min(offset, computed), n,
                   strong=not bad_magic and not failed)


def _parse_png(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("PNG chunks")
    if _mismatches(data, start, b"\x89PNG\r\n\x1a\n") + _mismatches(data, start + 12, b"IHDR") > 2:
        return None
    _magic(r, data, start, b"\x89PNG\r\n\x1a\n", "PNG")
    pos, solid, ended, bad_crc, frames = start + 8, start + 8, False, 0, 0
    while pos + 12 <= n:
        length = _U32BE.unpack_from(data, pos)[0]
        ctype = data[pos + 4:pos + 8]
        if not (ctype.isalpha() and _printable4(ctype)) or length > 1 << 31:
            if not (pos == start + 8 and length == 13):  # a damaged IHDR is still the IHDR
                break
        stop = pos + 12 + length
        if stop > n:
            solid = pos
            pos = stop
            break
        if zlib.crc32(memoryview(data)[pos + 4:pos + 8 + length]) != _U32BE.unpack_from(data, pos + 8 + length)[0]:
            bad_crc += 1
        if ctype == b"acTL" and length >= 8:
            frames = _U32BE.unpack_from(data, pos + 8)[0]
        pos = solid = stop
        if ctype == b"IEND":
            ended = True
            break
    if pos == start + 8:
        return None
    if bad_crc:
        r.damage(f"{bad_crc} chunk CRC{'s' * (bad_crc > 1)} wrong", min(0.3, _BAD_FIELD * bad_crc))
    end = pos
    if not ended and pos <= n:
        iend = data.find(b"IEND\xaeB`\x82", pos - 12 if pos >= 12 else 0)
        if pos < n and 0 <= iend < n and _hits_before(data, pos, iend):
            r.damage("chunk walk broken; resumed at IEND", _BAD_SIZE)
            end = solid = iend + 8
        elif pos < n:
            r.damage("chunk walk broken before IEND", _BAD_SIZE)
    modality = Modality.VIDEO if frames > 1 else Modality.IMAGE
    return r.found("png", modality, start, end, solid, n, strong=r.confidence >= 0.9)


def _hits_before(data: bytes, pos: int, target: int) -> bool:
    """No other PNG starts between pos and target, so target's IEND is this file's."""
    return data.find(b"\x89PNG", pos, target) < 0 and target - pos < 1 << 24


_JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}


def _parse_jpeg(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("JPEG markers")
    if data[start:start + 3] != b"\xff\xd8\xff":
        # found by its APP0/APP1 or first-table marker: the SOI itself is damaged
        if _mismatches(data, start, b"\xff\xd8\xff") > 1 or data[start + 3] not in (0xE0, 0xE1, 0xDB, 0xEE, 0xE2):
            return None
        r.damage("SOI marker damaged", _DAMAGED_MAGIC)
    pos, segments, scans, resyncs = start + 2, 0, 0, 0
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            nxt = _jpeg_resync(data, pos) if resyncs < 4 and scans == 0 else -1
            if nxt < 0:
                break
            r.damage("a segment length is wrong; resynchronised on the next marker", _BAD_SIZE)
            pos, resyncs = nxt, resyncs + 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        if marker == 0xD9:
            return r.found("jpeg", Modality.IMAGE, start, pos + 2, pos + 2, n, strong=segments >= 2)
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker < 0xC0 or pos + 4 > n:
            break
        length = _U16BE.unpack_from(data, pos + 2)[0]
        nxt = pos + 2 + length
        if marker != 0xDA and (length < 2 or nxt + 2 > n or data[nxt] != 0xFF) and resyncs < 4 and scans == 0:
            again = _jpeg_resync(data, pos + 4)
            if again > 0:
                r.damage("a segment length is wrong; resynchronised on the next marker", _BAD_SIZE)
                pos, resyncs, segments = again, resyncs + 1, segments + 1
                continue
        if length < 2:
            break
        pos = nxt
        segments += 1
        if marker == 0xDA:
            scans += 1
            pos = _jpeg_scan_end(data, pos)
    if segments < 2:
        return None
    if pos >= n:
        r.damage("no end-of-image marker", _CUT_SHORT)
        return r.found("jpeg", Modality.IMAGE, start, n, n, n, strong=True)
    r.damage("marker stream broken before end-of-image", _BAD_SIZE)
    return r.found("jpeg", Modality.IMAGE, start, pos, pos, n, strong=scans > 0)


_JPEG_TABLES = (b"\xff\xdb", b"\xff\xc4", b"\xff\xc0", b"\xff\xc2", b"\xff\xda", b"\xff\xe1", b"\xff\xfe")


def _jpeg_resync(data: bytes, pos: int) -> int:
    """The next table, frame or scan marker within 1 KiB of pos, or -1."""
    hits = [h for h in (data.find(m, pos, pos + (1 << 16)) for m in _JPEG_TABLES) if h >= 0]
    hits = [h for h in hits if h + 4 <= len(data) and _U16BE.unpack_from(data, h + 2)[0] >= 2]
    return min(hits) if hits else -1


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    """Where entropy-coded data starting at pos ends: the first 0xFF not stuffed nor a restart."""
    find = data.find
    while True:
        pos = find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        nxt = data[pos + 1]
        if nxt == 0 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF and pos + 2 < len(data) and data[pos + 2] == 0xFF:
            pos += 2
            continue
        if nxt >= 0xC0:
            return pos  # a marker: the scan is over
        return pos  # garbage after 0xFF: not JPEG any more


def _parse_gif(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("GIF blocks")
    head = data[start:start + 6]
    if head not in (b"GIF87a", b"GIF89a"):
        if _mismatches(data, start, b"GIF89a") > 1 and _mismatches(data, start, b"GIF87a") > 1:
            return None
        r.damage("GIF magic damaged", _DAMAGED_MAGIC)
        if start + 13 <= n and data[start + 10] & 0x80 == 0 and data[start + 13] not in (0x21, 0x2C):
            return None
    if start + 13 > n:
        return None
    w, h, packed = struct.unpack_from("<HHB", data, start + 6)
    if w == 0 or h == 0:
        r.damage("zero screen size", _BAD_FIELD)
    pos = start + 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    images = 0
    while pos < n:
        block = data[pos]
        if block == 0x3B:
            return r.found("gif", Modality.VIDEO if images > 1 else Modality.IMAGE, start, pos + 1, pos + 1, n,
                           strong=images > 0 and r.confidence > 0.9)
        if block == 0x21:
            pos = _gif_subblocks(data, pos + 2)
        elif block == 0x2C:
            if pos + 11 > n:
                pos = n
                break
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            if pos < n and not 2 <= data[pos] <= 12:
                r.damage("bad LZW code size", _BAD_FIELD)
            pos = _gif_subblocks(data, pos + 1)
            images += 1
        else:
            break
    if images == 0 and pos < n:
        return None
    modality = Modality.VIDEO if images > 1 else Modality.IMAGE
    if pos >= n:
        r.damage("no trailer", _CUT_SHORT)
        return r.found("gif", modality, start, n, n, n, strong=True)
    r.damage("block stream broken before the trailer", _BAD_SIZE)
    return r.found("gif", modality, start, pos, pos, n, strong=images > 0)


def _gif_subblocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return n


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def _parse_tiff(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 8 > n:
        return None
    le, be = _mismatches(data, start, b"II*\x00"), _mismatches(data, start, b"MM\x00*")
    if min(le, be) > 1:
        return None
    e = "<" if le <= be else ">"
    r = _Report("TIFF directories")
    if min(le, be):
        r.damage("TIFF magic damaged", _DAMAGED_MAGIC)
    u16, u32 = struct.Struct(e + "H"), struct.Struct(e + "I")
    ifd = u32.unpack_from(data, start + 4)[0]
    if start + ifd + 2 > n or ifd < 8:
        if min(le, be) == 0 and start + ifd + 2 > n and ifd < 1 << 28:
            r.damage("first directory lies past the data", _CUT_SHORT)
            return r.found("tiff", Modality.IMAGE, start, start + ifd + 2, n, n, strong=True)
        r.damage("first-directory offset damaged", _BAD_SIZE)
        ifd = _tiff_find_ifd(data, start, e)
    extent, seen, entries_ok, tags = 8, set(), 0, set()
    while 8 <= ifd and ifd not in seen and len(seen) < 256 and start + ifd + 2 <= n:
        seen.add(ifd)
        count = u16.unpack_from(data, start + ifd)[0]
        if not 0 < count < 4096:
            break
        base = start + ifd + 2
        extent = max(extent, ifd + 2 + 12 * count + 4)
        offsets: dict[int, list[int]] = {}
        for i in range(count):
            p = base + 12 * i
            if p + 12 > n:
                break
            tag, typ, cnt = struct.unpack_from(e + "HHI", data, p)
            size = _TIFF_TYPE_SIZES.get(typ, 0) * cnt
            if size == 0:
                continue
            entries_ok += 1
            tags.add(tag)
            if size > 4:
                off = u32.unpack_from(data, p + 8)[0]
                extent = max(extent, off + size)
            if tag in (273, 279, 324, 325) and typ in (3, 4) and cnt < 1 << 20:
                fmt = e + ("H" if typ == 3 else "I") * cnt
                where = p + 8 if size <= 4 else start + u32.unpack_from(data, p + 8)[0]
                if where + struct.calcsize(fmt) <= n:
                    offsets[tag] = list(struct.unpack_from(fmt, data, where))
        for off_tag, cnt_tag in ((273, 279), (324, 325)):
            for off, length in zip(offsets.get(off_tag, []), offsets.get(cnt_tag, [])):
                extent = max(extent, off + length)
        nxt = base + 12 * count
        ifd = u32.unpack_from(data, nxt)[0] if nxt + 4 <= n else 0
    if entries_ok < 3 or 256 not in tags:
        return None
    if extent <= 8:
        return None
    return r.found("tiff", Modality.IMAGE, start, start + extent, start + extent, n, strong=True)


def _tiff_find_ifd(data: bytes, start: int, e: str) -> int:
    """A directory's offset found by its ImageWidth entry (tag 256, one SHORT or LONG)."""
    for typ in (3, 4):
        hit = data.find(struct.pack(e + "HHI", 256, typ, 1), start + 8)
        while hit >= 0:
            for k in range(4):  # ImageWidth is among the first tags
                cand = hit - 2 - 12 * k
                if cand >= start + 8 and 3 <= struct.unpack_from(e + "H", data, cand)[0] < 512:
                    return cand - start
            hit = data.find(struct.pack(e + "HHI", 256, typ, 1), hit + 1)
    return 8


_PNM = re.compile(rb"P([1-7])(?:\s|#[^\n]*\n)+(\d{1,6})(?:\s|#[^\n]*\n)+(\d{1,6})"
                  rb"(?:(?:\s|#[^\n]*\n)+(\d{1,5}))?\s")


def _parse_pnm(data: bytes, start: int) -> Found | None:
    m = _PNM.match(data, start, start + 512)
    if m is None or m.group(1) not in b"456":
        return None
    kind, w, h = int(m.group(1)), int(m.group(2)), int(m.group(3))
    maxval = int(m.group(4)) if m.group(4) else 1
    if kind != 4 and not m.group(4) or not 0 < maxval < 65536 or w == 0 or h == 0:
        return None
    if kind == 4:
        size = (w + 7) // 8 * h
    else:
        size = w * h * (3 if kind == 6 else 1) * (2 if maxval > 255 else 1)
    r = _Report("PNM header")
    return r.found("ppm", Modality.IMAGE, start, m.end() + size, m.end(), len(data), strong=True)


# ---------------------------------------------------------------------------------------------
# RIFF and IFF containers: WAV, AVI, WebP, AIFF


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
        if not _printable4(cid):
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


def _parse_riff(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 20 > n:
        return None
    r = _Report("RIFF chunks")
    bad = _mismatches(data, start, b"RIFF")
    form = _fuzzy_form(data[start + 8:start + 12], _RIFF_FORMS)
    if form is None or bad > 1:
        return None
    if bad:
        r.damage("RIFF magic damaged", _DAMAGED_MAGIC)
    if form != data[start + 8:start + 12]:
        r.damage("form type damaged", _DAMAGED_MAGIC)
    fmt, modality = _RIFF_FORMS[form]
    declared = start + 8 + _U32LE.unpack_from(data, start + 4)[0]
    chunks, walked, overran = _walk_chunks(data, start + 12, declared if declared <= n else n, _U32LE, _RIFF_KNOWN)
    if not chunks:
        return None
    ids = [c[0] for c in chunks]
    if fmt == "wav":
        _check_wav(r, data, chunks)
    elif fmt == "avi" and b"LIST" not in ids:
        r.damage("no LIST chunk", _BAD_FIELD)
    if declared in (walked, walked + 1, walked - 1) and not overran:
        end = solid = declared
    elif overran:
        # the last chunk's size runs past the data: cut short, or that size field is wrong
        last = chunks[-1]
        end, solid = walked, last[1] + 8
        if declared < walked and declared > last[1]:
            r.damage("chunk size runs past the RIFF size", _BAD_SIZE)
            end = declared
    elif declared <= n and declared > walked:
        # chunks stop before the RIFF size: a chunk size is wrong, or the RIFF size is too big
        r.damage(f"RIFF size {declared - start - 8} but chunks end at {walked - start}", _BAD_SIZE)
        end, solid = declared, walked
    else:
        if declared > n:
            r.damage("RIFF size runs past the data", _BAD_SIZE)
        else:
            r.damage(f"RIFF size {declared - start - 8} but chunks end at {walked - start}", _BAD_SIZE)
        end = solid = walked
    # the sample or frame payload is raw bytes: only the headers before it are verified
    payload = next((off + 8 for cid, off, _ in chunks if cid in (b"data", b"movi")), None)
    if payload is not None and fmt == "wav":
        solid = min(solid, payload)
    return r.found(fmt, modality, start, end, solid, n, strong=bad == 0 and r.confidence >= 0.9)


def _check_wav(r: _Report, data: bytes, chunks: list[tuple[bytes, int, int]]) -> None:
    fmt = next((off for cid, off, size in chunks if cid == b"fmt " and size >= 16), None)
    if fmt is None:
        r.damage("no fmt chunk", _BAD_FIELD)
        return
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, fmt + 8)
    if tag not in (1, 2, 3, 6, 7, 0x11, 0x55, 0xFFFE) or not 0 < channels <= 32 or not 100 <= rate <= 768000 \
            or bits not in (0, 4, 8, 16, 24, 32, 64):
        r.damage("implausible fmt fields", _BAD_FIELD)
    r.notes[0] = f"RIFF/WAVE, {bits}-bit, {channels} ch, {rate} Hz"
    if not any(cid == b"data" for cid, _, _ in chunks):
        r.damage("no data chunk", _BAD_FIELD)


def _parse_iff(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 20 > n:
        return None
    r = _Report("IFF chunks")
    bad = _mismatches(data, start, b"FORM")
    form = _fuzzy_form(data[start + 8:start + 12], _IFF_FORMS)
    if form is None or bad > 1:
        return None
    if bad:
        r.damage("FORM magic damaged", _DAMAGED_MAGIC)
    fmt, modality = _IFF_FORMS[form]
    declared = start + 8 + _U32BE.unpack_from(data, start + 4)[0]
    chunks, walked, overran = _walk_chunks(data, start + 12, declared if declared <= n else n, _U32BE, _IFF_KNOWN)
    if not chunks or b"COMM" not in [c[0] for c in chunks]:
        return None
    if declared in (walked, walked + 1) and not overran:
        end = solid = declared
    elif overran:
        end, solid = walked, chunks[-1][1] + 8
    elif declared <= n and declared > walked:
        r.damage("FORM size disagrees with its chunks", _BAD_SIZE)
        end, solid = declared, walked
    else:
        r.damage("FORM size disagrees with its chunks", _BAD_SIZE)
        end = solid = walked
    ssnd = next((off + 16 for cid, off, _ in chunks if cid == b"SSND"), None)
    if ssnd is not None:
        solid = min(solid, ssnd)
    return r.found(fmt, modality, start, end, solid, n, strong=bad == 0)


# ---------------------------------------------------------------------------------------------
# audio


def _parse_au(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 24 > n or _mismatches(data, start, b".snd") > 1:
        return None
    offset, size, encoding, rate, channels = struct.unpack_from(">IIIII", data, start + 4)
    checks = [24 <= offset <= 1 << 16, 1 <= encoding <= 27, 0 < channels <= 64, 0 < rate <= 1 << 20]
    bad = _mismatches(data, start, b".snd")
    if checks.count(False) + bad > 1:
        return None
    if not checks[0]:
        offset = 24  # what every writer uses when there is no annotation
    r = _Report(f"Sun/NeXT header, encoding {encoding}, {rate} Hz")
    if bad:
        r.damage(".snd magic damaged", _DAMAGED_MAGIC)
    if not all(checks):
        r.damage("implausible header field", _BAD_FIELD)
    if size == 0xFFFFFFFF:
        r.damage("data size unknown", _BAD_FIELD)
        return r.found("au", Modality.AUDIO, start, n, start + offset, n, strong=True)
    return r.found("au", Modality.AUDIO, start, start + offset + size, start + offset, n, strong=True)


def _parse_flac(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("FLAC metadata and frames")
    streaminfo = data[start + 5:start + 8] == b"\x00\x00\x22"  # a 34-byte first block
    if data[start:start + 4] != b"fLaC":
        if _mismatches(data, start, b"fLaC") > 1 or not streaminfo:
            return None
        r.damage("fLaC magic damaged", _DAMAGED_MAGIC)
    min_frame = max_frame = 0
    if streaminfo and start + 18 <= n:
        min_frame = int.from_bytes(data[start + 12:start + 15], "big")
        max_frame = int.from_bytes(data[start + 15:start + 18], "big")
    elif not streaminfo:
        r.damage("STREAMINFO header damaged", _BAD_FIELD)
    pos, last, blocks = start + 4, False, 0
    while not last and pos + 4 <= n and blocks < 128:
        head = data[pos]
        last, kind = bool(head & 0x80), head & 0x7F
        if kind > 6 and not (blocks == 0 and streaminfo):
            break
        pos += 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        blocks += 1
    if pos >= n:
        return r.found("flac", Modality.AUDIO, start, pos, n, n, strong=True)  # cut short in its metadata
    if not (last and _flac_header_len(data, pos)):
        # the metadata walk went wrong: the first frame header (its CRC-8 checks) says where audio starts
        r.damage("metadata block headers damaged", _BAD_FIELD)
        pos = _next_flac_frame(data, start + 42, start + 42 + (1 << 18))
        if pos < 0:
            return None
    max_frame = max_frame if min_frame <= max_frame <= 1 << 24 and max_frame else 1 << 16
    min_frame = min_frame if 9 < min_frame <= max_frame else 10
    frame = pos
    while True:
        nxt = _next_flac_frame(data, frame + min_frame - 2, frame + 2 * max_frame + 64)
        if nxt < 0:
            break
        frame = nxt
    end = _flac_frame_end(data, frame, frame + min_frame - 2, frame + max_frame + 16)
    if end < 0:
        r.damage("last frame cut short", _CUT_SHORT)
        return r.found("flac", Modality.AUDIO, start, min(n, frame + max_frame), frame, n, strong=True)
    return r.found("flac", Modality.AUDIO, start, end, end, n, strong=True)


def _crc8(b: bytes) -> int:
    crc = 0
    for byte in b:
        crc = _CRC8[crc ^ byte]
    return crc


def _make_crc_tables() -> tuple[list[int], list[int]]:
    t8, t16 = [], []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        t8.append(c)
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        t16.append(c)
    return t8, t16


_CRC8, _CRC16 = _make_crc_tables()


def _flac_header_len(data: bytes, pos: int) -> int:
    """Length of a valid FLAC frame header at pos (its CRC-8 checks out), or 0."""
    if pos + 6 > len(data):
        return 0
    b2, b3 = data[pos + 2], data[pos + 3]
    if b2 >> 4 == 0 or b2 & 0xF == 0xF or b3 >> 4 >= 11 or b3 & 1:
        return 0
    p = pos + 4
    lead = data[p]  # UTF-8-style coded frame or sample number
    extra = 0
    if lead >= 0x80:
        ones = 0
        while ones < 8 and lead & (0x80 >> ones):
            ones += 1
        if not 2 <= ones <= 7:
            return 0
        extra = ones - 1
    p += 1 + extra
    p += {6: 1, 7: 2}.get(b2 >> 4, 0)
    p += {12: 1, 13: 2, 14: 2}.get(b2 & 0xF, 0)
    if p >= len(data) or _crc8(data[pos:p]) != data[p]:
        return 0
    return p + 1 - pos


def _next_flac_frame(data: bytes, pos: int, limit: int) -> int:
    while True:
        pos = data.find(b"\xff", pos, limit)
        if pos < 0:
            return -1
        if pos + 1 < len(data) and data[pos + 1] & 0xFE == 0xF8 and _flac_header_len(data, pos):
            return pos
        pos += 1


def _flac_frame_end(data: bytes, frame: int, earliest: int, limit: int) -> int:
    """Where the frame at `frame` ends: the first place from `earliest` on where its CRC-16
    footer checks out, followed by the end of the data or by something that is not FLAC."""
    crc, table, limit = 0, _CRC16, min(limit, len(data))
    for i in range(frame, limit):
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ data[i]]
        if crc == 0 and i + 1 >= earliest:
            return i + 1
    return -1


def _parse_ogg(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("Ogg pages")
    pos, pages, video, audio, serials, page, seq = start, 0, False, False, set(), start, -1
    while pos + 27 <= n:
        bad = _mismatches(data, pos, b"OggS\x00")
        if bad and pages:
            # a damaged page length: the next page of one of our streams is the way on
            nxt = data.find(b"OggS\x00", page + 27, page + 65536)
            ours = nxt >= 0 and (data[nxt + 14:nxt + 18] in serials or _U32LE.unpack_from(data, nxt + 18)[0] == seq + 1)
            if not ours or nxt + 27 > n or data[nxt + 5] & 2:
                break
            r.damage("a page is damaged; resynchronised on the next page", _BAD_SIZE)
            pos, bad = nxt, 0
        if bad > 1:
            break
        if bad:
            r.damage("OggS magic damaged", _DAMAGED_MAGIC)
        if pages and data[pos + 5] & 2 and data[pos + 14:pos + 18] not in serials and not data[page + 5] & 2:
            break  # a new stream begins after ours ended: another file
        serials.add(data[pos + 14:pos + 18])
        seq = _U32LE.unpack_from(data, pos + 18)[0]
        nseg = data[pos + 26]
        body = pos + 27 + nseg
        if body > n:
            pos = body
            break
        head = data[body:body + 8]
        if head.startswith(b"\x80theora"):
            video = True
        elif head.startswith((b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex   ")):
            audio = True
        page = pos
        pos = body + sum(data[pos + 27:body])
        pages += 1
    if pages == 0 or (pages == 1 and pos < n and not (audio or video)):
        return None
    modality = Modality.VIDEO if video else Modality.AUDIO
    return r.found("ogg", modality, start, pos, pos if pos <= n else page, n, strong=pages > 1)


# MPEG audio: bitrates (kbit/s) by [version is MPEG-1][layer index], sample rates by version
_MP3_BITRATES = {
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """(length, header signature) of an MPEG audio frame at pos, or None."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    rate_i, bit_i = (b2 >> 2) & 3, b2 >> 4
    if version == 1 or layer == 0 or rate_i == 3 or bit_i in (0, 15):
        return None
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[(mpeg1, layer)][bit_i] * 1000
    rate = _MP3_RATES[version][rate_i]
    pad = (b2 >> 1) & 1
    if layer == 3:  # layer I
        length = (12 * bitrate // rate + pad) * 4
    else:
        length = (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + pad
    return (length, (b1 << 8) | (b2 & 0x0C)) if length > 4 else None


def _mp3_damaged_first(data: bytes, pos: int, signature: int) -> int:
    """Where a frame with one damaged sync byte ends exactly at pos, or -1: the first frame of a
    stream whose magic was flipped."""
    b1 = signature >> 8
    lo = max(0, pos - 1442)  # the longest MPEG audio frame is 1,441 bytes
    window = np.frombuffer(data, dtype=np.uint8, count=pos - lo, offset=lo)
    near = np.flatnonzero((window[:-1] == 0xFF) | (window[1:] == b1))[::-1] + lo
    for p in near.tolist():
        if p > pos - 4:
            continue
        frame = _mp3_frame(b"\xff" + bytes([b1]) + data[p + 2:p + 4], 0)
        if frame is not None and p + frame[0] == pos and (data[p] == 0xFF) != (data[p + 1] == b1):
            return p
    return -1


def _parse_mp3(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("MPEG audio frames")
    pos = start
    tagged = False
    if data[start + 1:start + 3] == b"D3" and start + 10 <= n and data[start + 3] in (2, 3, 4):
        if data[start] != ord("I"):
            r.damage("ID3 magic damaged", _DAMAGED_MAGIC)
        size = 0
        for b in data[start + 6:start + 10]:
            size = (size << 7) | (b & 0x7F)
        pos = start + 10 + size
        tagged = True
        r.notes[0] = "ID3 tag and MPEG audio frames"
    first = _mp3_frame(data, pos)
    if first is None:
        if not tagged:
            return None
        near = data.find(b"\xff", pos, pos + 4096)  # padding after the tag
        first = _mp3_frame(data, near) if near >= 0 else None
        if first is None:
            return r.found("mp3", Modality.AUDIO, start, pos, pos, n, strong=False) if pos < n else None
        pos = near
    first_pos = pos
    signature, frames, last = first[1], 0, pos
    while True:
        frame = _mp3_frame(data, pos)
        if frame is None or frame[1] != signature:
            break
        last, pos = pos, pos + frame[0]
        frames += 1
        if pos >= n:
            break
    # a lone frame or two is chance in random bytes, unless a Xing/Info frame or an ID3 tag vouches
    vouched = tagged or any(m in data[start:start + 64] for m in (b"Xing", b"Info", b"LAME"))
    if frames < 3 and not (vouched and frames >= 1):
        return None
    if not tagged and first_pos >= 4:
        back = _mp3_damaged_first(data, first_pos, signature)
        if back >= 0:
            r.damage("first frame header damaged", _DAMAGED_MAGIC)
            start = back
    if pos < n and data[pos:pos + 3] == b"TAG" and pos + 128 <= n:
        pos += 128
    # a last frame running past the data is cut short; the frames before it are verified
    return r.found("mp3", Modality.AUDIO, start, pos, pos if pos <= n else last, n, strong=frames >= 4 or tagged)


# ---------------------------------------------------------------------------------------------
# video


_Y4M_PLANES = {"mono": 1.0, "gray": 1.0, "420jpeg": 1.5, "420paldv": 1.5, "420mpeg2": 1.5, "420": 1.5,
               "411": 1.5, "422": 2.0, "444": 3.0, "444alpha": 4.0}


def _y4m_frame_bytes(header: bytes) -> int:
    fields = dict((t[:1], t[1:]) for t in header.split()[1:] if t)
    w, h = int(fields[b"W"]), int(fields[b"H"])
    colour = fields.get(b"C", b"420jpeg").decode("ascii", "replace")
    m = re.match(r"([a-z0-9]+?)(?:p(\d+))?$", colour)
    base, depth = (m.group(1), int(m.group(2) or 8)) if m else ("420jpeg", 8)
    if base not in _Y4M_PLANES:
        base = next((k for k in _Y4M_PLANES if colour.startswith(k)), "420jpeg")
    if w <= 0 or h <= 0:
        raise ValueError("empty frame")
    if base.startswith(("420", "411")):
        luma_chroma = w * h + 2 * (((w + 1) // 2) * ((h + 1) // 2) if base != "411" else ((w + 3) // 4) * h)
    else:
        luma_chroma = int(w * h * _Y4M_PLANES[base]) if base != "422" else w * h + 2 * ((w + 1) // 2) * h
    return luma_chroma * (2 if depth > 8 else 1)


def _parse_y4m(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("Y4M frames")
    if _mismatches(data, start, b"YUV4MPEG2 ") > 1:
        return None
    _magic(r, data, start, b"YUV4MPEG2 ", "YUV4MPEG2")
    eol = data.find(b"\n", start, start + 256)
    if eol < 0:
        return None
    pos = eol + 1
    try:
        frame = _y4m_frame_bytes(data[start:eol])
    except (ValueError, KeyError):
        frame = -1
    first = data.find(b"FRAME", pos, pos + 64)
    if first < 0:
        return None
    if first != pos:
        r.damage("bytes between header and first frame", _BAD_FIELD)
    second = data.find(b"FRAME", first + 5, first + 5 + (1 << 22))
    marker = data.find(b"\n", first, first + 64) + 1 - first
    if marker <= 0:
        return None
    if frame <= 0 or (second > 0 and second != first + marker + frame and _plausible_gap(data, second, first)):
        # the size fields are damaged; the markers themselves say how far apart frames are
        if second < 0:
            return None
        r.damage("frame size from the header disagrees with the frame markers", _BAD_SIZE)
        frame = second - first - marker
    if frame < 0:
        return None
    pos, frames, solid = first, 0, first
    while pos + 6 <= n:
        bad = _mismatches(data, pos, b"FRAME")
        if bad > 1:
            break
        if bad:
            r.damage("FRAME marker damaged", _BAD_FIELD / 2)
        eol = data.find(b"\n", pos, pos + 64)
        if eol < 0:
            break
        solid = eol + 1
        pos = solid + frame
        frames += 1
    # the last frame's pixels are raw bytes: only its marker is verified
    return r.found("y4m", Modality.VIDEO, start, pos, solid, n, strong=frames > 0 and r.confidence > 0.9)


def _parse_y4m_frames(data: bytes, start: int) -> Found | None:
    """Y4M found by its FRAME markers: the header before them is damaged beyond reading."""
    n = len(data)
    second = data.find(b"FRAME\n", start + 6, start + 6 + (1 << 22))
    third = data.find(b"FRAME\n", second + 6, second + 6 + (second - start) + 1) if second > 0 else -1
    if second < 0 or third - second != second - start:
        return None  # two equal gaps between three markers, or it is not video
    frame = second - start - 6
    r = _Report("Y4M frame markers (header unreadable)")
    r.damage("stream header damaged", _DAMAGED_MAGIC)
    begin = start
    for token in (b"YUV4", b"MPEG2", b"PEG2 ", b" W", b" H"):
        hit = data.rfind(token, max(0, start - 128), start)
        if hit >= 0:
            line = data.rfind(b"\n", max(0, start - 128), start - 1)
            begin = min(begin, max(line + 1, hit - 9))
    pos, solid = start, start
    while pos + 6 <= n and _mismatches(data, pos, b"FRAME\n") <= 1:
        solid = pos + 6
        pos = solid + frame
    return r.found("y4m", Modality.VIDEO, begin, pos, solid, n, strong=False)


def _plausible_gap(data: bytes, second: int, first: int) -> bool:
    return data[second:second + 6] == b"FRAME\n" and second - first > 6


_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"moof", b"mfra", b"sidx", b"styp",
              b"meta", b"pdin", b"emsg", b"prft", b"ssix", b"jumb", b"pnot", b"junk"}


def _parse_mp4(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("MP4 boxes")
    if start + 16 > n:
        return None
    if data[start + 4:start + 8] != b"ftyp":
        if _mismatches(data, start + 4, b"ftyp") > 1:
            return None
        r.damage("ftyp magic damaged", _DAMAGED_MAGIC)
    brand = data[start + 8:start + 12]
    if not _printable4(brand) and not 8 <= _U32BE.unpack_from(data, start)[0] <= 1024:
        return None
    pos, boxes, moov, overran, seen, resyncs = start, 0, None, False, set(), 0
    while pos + 8 <= n:
        size = _U32BE.unpack_from(data, pos)[0]
        kind = data[pos + 4:pos + 8]
        if boxes and kind not in _MP4_BOXES:
            nxt = _mp4_resync(data, pos) if not {b"moov", b"mdat"} <= seen and resyncs < 4 else -1
            if nxt <= pos:
                break
            resyncs += 1
            r.damage("a box size is wrong; resynchronised on the next box", _BAD_SIZE)
            pos = nxt
            continue
        seen.add(kind)
        head = 8
        if size == 1 and pos + 16 <= n:
            size, head = _U64BE.unpack_from(data, pos + 8)[0], 16
        elif size == 0:
            size = n - pos
        if size < head:
            break
        if kind == b"moov":
            moov = (pos, min(n, pos + size))
        boxes += 1
        if pos + size > n:
            overran = True
            pos += size
            break
        pos += size
    if boxes == 0:
        return None
    if moov is not None:
        body = data[moov[0]:moov[1]]
        video = b"vide" in body
        audio = b"soun" in body
    else:
        video, audio = brand not in (b"M4A ", b"M4B "), brand in (b"M4A ", b"M4B ")
    modality = Modality.VIDEO if video or not audio else Modality.AUDIO
    solid = pos if not overran else n
    return r.found("mp4", modality, start, pos, solid, n, strong=boxes >= 2)


def _mp4_resync(data: bytes, pos: int) -> int:
    """The start of the next moov/mdat/free box within 4 KiB of pos, unless another MP4's ftyp
    comes first; or -1."""
    hits = [h - 4 for h in (data.find(t, max(4, pos - 64), pos + 4096) for t in (b"moov", b"mdat", b"free"))
            if h >= 4 and _U32BE.unpack_from(data, h - 4)[0] >= 8]
    hits = [h for h in hits if h > pos - 64]
    if not hits:
        return -1
    nxt = min(hits)
    other = data.find(b"ftyp", pos, nxt)
    return -1 if 0 <= other < nxt else nxt


def _ebml_vint(data: bytes, pos: int, keep_marker: bool = False) -> tuple[int, int]:
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad vint")
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = -1  # unknown size
    return value, length


_EBML_TOP = {0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1F43B675, 0x1C53BB6B, 0x1254C367, 0x1043A770, 0x1941A469,
             0xEC, 0xBF}


_EBML_FIRST = (b"\x11\x4d\x9b\x74", b"\x15\x49\xa9\x66", b"\x16\x54\xae\x6b", b"\x1f\x43\xb6\x75")


def _ebml_walk(data: bytes, pos: int) -> int:
    """Where a run of known top-level Matroska elements starting at pos ends."""
    n = len(data)
    try:
        while pos + 2 <= n:
            eid, elen = _ebml_vint(data, pos, keep_marker=True)
            if eid not in _EBML_TOP:
                break
            esize, slen = _ebml_vint(data, pos + elen)
            if esize < 0:
                return n
            pos += elen + slen + esize
    except (ValueError, IndexError):
        pass
    return pos


def _parse_ebml(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("EBML elements")
    if data[start:start + 4] != b"\x1aE\xdf\xa3":
        if _mismatches(data, start, b"\x1aE\xdf\xa3") > 1:
            return None
        r.damage("EBML magic damaged", _DAMAGED_MAGIC)
    head = data[start:start + 128]
    doc = b"webm" if b"webm" in head else b"matroska" if b"matroska" in head else None
    if doc is None:
        return None
    try:
        size, length = _ebml_vint(data, start + 4)
    except ValueError:
        size, length = -1, 1
    pos = start + 4 + length + size
    if not 0 < size < 256 or data[pos:pos + 4] != b"\x18\x53\x80\x67":
        seg = data.find(b"\x18\x53\x80\x67", start + 8, start + 256)
        if seg < 0:
            r.damage("no Segment after the header", _BAD_FIELD)
            return r.found("webm", Modality.VIDEO, start, n, start + 8, n, strong=False)
        r.damage("EBML header size damaged", _BAD_SIZE)
        pos = seg
    seg_id, id_len = _ebml_vint(data, pos, keep_marker=True)
    seg_size, size_len = _ebml_vint(data, pos + id_len)
    body = pos + id_len + size_len
    if _ebml_walk(data, body) == body:
        # the Segment's own size is damaged: its first child (a SeekHead or Info) shows where it starts
        child = min((h for h in (data.find(c, pos + 4, pos + 24) for c in _EBML_FIRST) if h >= 0), default=-1)
        if child > 0:
            r.damage("Segment size damaged", _BAD_SIZE)
            body, seg_size = child, -1
    walked = _ebml_walk(data, body)
    end = body + seg_size if seg_size >= 0 else walked
    if seg_size >= 0 and end != walked and not (walked > n and end > n):
        r.damage("Segment size disagrees with its elements", _BAD_SIZE)
        end = walked
    tracks = data[body:min(n, body + (1 << 16))]
    video = any(c in tracks for c in (b"V_VP8", b"V_VP9", b"V_AV1", b"V_MPEG", b"V_THEORA", b"V_MS"))
    modality = Modality.VIDEO if video or b"A_" not in tracks else Modality.AUDIO
    return r.found("webm" if doc == b"webm" else "mkv", modality, start, end, min(end, n), n, strong=True)


# ---------------------------------------------------------------------------------------------
# binaries


def _parse_elf(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("ELF headers")
    if start + 52 > n:
        return None
    if data[start:start + 4] != b"\x7fELF":
        if _mismatches(data, start, b"\x7fELF") > 1:
            return None
        r.damage("ELF magic damaged", _DAMAGED_MAGIC)
    cls, endian, version = data[start + 4], data[start + 5], data[start + 6]
    if cls not in (1, 2) or endian not in (1, 2) or version != 1:
        return None
    e = "<" if endian == 1 else ">"
    if cls == 2:
        if start + 64 > n:
            return None
        phoff, shoff = struct.unpack_from(e + "QQ", data, start + 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, start + 54)
        sh = struct.Struct(e + "IIQQQQ")  # name, type, flags, addr, offset, size
        ph = struct.Struct(e + "IIQQQQ")  # type, flags, offset, vaddr, paddr, filesz
    else:
        phoff, shoff = struct.unpack_from(e + "II", data, start + 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, start + 42)
        sh = struct.Struct(e + "IIIIII")
        ph = struct.Struct(e + "IIIIII")  # type, offset, vaddr, paddr, filesz, memsz
    extent = 64 if cls == 2 else 52
    if phnum and phentsize >= ph.size:
        extent = max(extent, phoff + phnum * phentsize)
        for i in range(min(phnum, 4096)):
            p = start + phoff + i * phentsize
            if p + ph.size > n:
                break
            f = ph.unpack_from(data, p)
            offset, filesz = (f[2], f[5]) if cls == 2 else (f[1], f[4])
            extent = max(extent, offset + filesz)
    if shnum and shentsize >= sh.size:
        extent = max(extent, shoff + shnum * shentsize)
        for i in range(min(shnum, 1 << 16)):
            p = start + shoff + i * shentsize
            if p + sh.size > n:
                break
            f = sh.unpack_from(data, p)
            if f[1] != 8:  # SHT_NOBITS takes no file space
                extent = max(extent, f[4] + f[5])
    if extent > 1 << 34:
        r.damage("implausible header offsets", _BAD_SIZE)
        extent = n - start
    # sections past the data mean it was cut short: only its headers are then verified
    solid = start + extent if start + extent <= n else start + 64
    return r.found("elf", Modality.BINARY, start, start + extent, solid, n, strong=True)


def _parse_zip(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("ZIP directory")
    if start + 30 > n:
        return None
    if data[start:start + 4] != b"PK\x03\x04":
        if _mismatches(data, start, b"PK\x03\x04") > 1:
            return None
        r.damage("PK magic damaged", _DAMAGED_MAGIC)
    version, flags, method = struct.unpack_from("<HHH", data, start + 4)
    if version > 100 or method not in (0, 1, 6, 8, 9, 12, 14, 19, 93, 95, 98, 99):
        return None
    eocd = start
    for _ in range(64):
        eocd = data.find(b"PK\x05\x06", eocd + 4)
        if eocd < 0 or eocd + 22 > n:
            break
        cd_size, cd_off, comment = struct.unpack_from("<IIH", data, eocd + 12)
        if start + cd_off + cd_size == eocd and data[start + cd_off:start + cd_off + 4] in (b"PK\x01\x02", b"PK\x05\x06"):
            end = eocd + 22 + comment
            return r.found("zip", Modality.BINARY, start, end, end, n, strong=True)
    # no end-of-directory record of its own: walk the local entries while their sizes hold
    pos, entries = start, 0
    while pos + 30 <= n and (pos == start or data[pos:pos + 4] == b"PK\x03\x04"):
        csize, _, name, extra = struct.unpack_from("<IIHH", data, pos + 18)
        pos += 30 + name + extra + csize
        entries += 1
    r.damage("its end-of-directory record does not match", _BAD_SIZE)
    if data[pos:pos + 4] == b"PK\x01\x02":
        eocd = data.find(b"PK\x05\x06", pos)
        if eocd >= 0 and eocd + 22 <= n:
            end = eocd + 22 + _U16LE.unpack_from(data, eocd + 20)[0]
            return r.found("zip", Modality.BINARY, start, end, end, n, strong=True)
    return r.found("zip", Modality.BINARY, start, pos, pos, n, strong=entries > 1)


def _parse_gzip(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("gzip member")
    if start + 18 > n:
        return None
    if data[start:start + 3] != b"\x1f\x8b\x08":
        if data[start + 1:start + 3] != b"\x8b\x08":
            return None
        r.damage("gzip magic damaged", _DAMAGED_MAGIC)
    flags = data[start + 3]
    if flags & 0xE0 or data[start + 9] > 13 and data[start + 9] != 255:
        return None
    pos = start + 10
    if flags & 4:
        pos += 2 + _U16LE.unpack_from(data, pos)[0]
    for bit in (8, 16):
        if flags & bit:
            z = data.find(b"\x00", pos, pos + 4096)
            if z < 0:
                return None
            pos = z + 1
    if flags & 2:
        pos += 2
    d = zlib.decompressobj(-15)
    try:
        step, read, out = 1 << 20, pos, 0
        while not d.eof and read < n:
            out += len(d.decompress(data[read:read + step], 1 << 24))
            while d.unconsumed_tail and out < 1 << 30:
                out += len(d.decompress(d.unconsumed_tail, 1 << 24))
            read += step
            if out >= 1 << 30:
                break  # a decompression bomb: what follows is not worth the time
    except zlib.error:
        if read == pos or pos + 64 > n:
            return None
        r.damage("deflate stream corrupt", _BAD_SIZE)
        return r.found("gzip", Modality.BINARY, start, n, pos, n, strong=False)
    if not d.eof:
        r.damage("deflate stream cut short", _CUT_SHORT)
        return r.found("gzip", Modality.BINARY, start, n, n, n, strong=True)
    end = min(read, n) - len(d.unused_data) + 8
    return r.found("gzip", Modality.BINARY, start, end, end, n, strong=True)


_PDF_CONTINUES = re.compile(rb"\s*(?:\d+\s+\d+\s+obj|xref|%)")


def _parse_pdf(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("PDF to %%EOF")
    if data[start:start + 5] != b"%PDF-":
        if _mismatches(data, start, b"%PDF-1.") > 1 or not data[start + 7:start + 8].isdigit():
            return None
        r.damage("%PDF magic damaged", _DAMAGED_MAGIC)
    nxt = data.find(b"%PDF-", start + 5)
    pos, end = start, -1
    while True:
        eof = data.find(b"%%EOF", pos)
        if eof < 0 or (0 <= nxt < eof):
            break
        end = eof + 5
        while end < n and data[end] in b"\r\n" and end - eof < 7:
            end += 1
        if not _PDF_CONTINUES.match(data, end, end + 64):
            break
        pos = end
    if end < 0:
        r.damage("no %%EOF", _CUT_SHORT)
        # a PDF's streams hold JPEGs and text of its own: without %%EOF, it runs to the next PDF
        stop = nxt if nxt > 0 else n
        return r.found("pdf", Modality.BINARY, start, stop, stop, n, strong=True)
    return r.found("pdf", Modality.BINARY, start, end, end, n, strong=True)


def _parse_sqlite(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = _Report("SQLite header")
    if start + 100 > n:
        return None
    if _mismatches(data, start, b"SQLite format 3\x00") > 1:
        return None
    _magic(r, data, start, b"SQLite format 3\x00", "SQLite")
    page = _U16BE.unpack_from(data, start + 16)[0]
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return None
    change, pages = struct.unpack_from(">II", data, start + 24)
    valid_for = _U32BE.unpack_from(data, start + 92)[0]
    if pages == 0 or valid_for != change:
        r.damage("page count not valid", _BAD_SIZE)
        end = n
        return r.found("sqlite", Modality.BINARY, start, end, start + 100, n, strong=True)
    end = start + page * pages
    return r.found("sqlite", Modality.BINARY, start, end, end if end <= n else start + 100, n, strong=True)


# formats named by signature only: their extent is whatever the statistics after them agree on
_MAGIC_ONLY = {
    "7z": (b"7z\xbc\xaf\x27\x1c", Modality.BINARY),
    "xz": (b"\xfd7zXZ\x00", Modality.BINARY),
    "bzip2": (b"BZh", Modality.BINARY),
    "zstd": (b"\x28\xb5\x2f\xfd", Modality.BINARY),
    "class": (b"\xca\xfe\xba\xbe\x00\x00", Modality.BINARY),
    "wasm": (b"\x00asm\x01\x00\x00\x00", Modality.BINARY),
}


def _magic_only(fmt: str) -> Callable[[bytes, int], Found | None]:
    magic, modality = _MAGIC_ONLY[fmt]

    def parse(data: bytes, start: int) -> Found | None:
        if fmt == "bzip2" and data[start + 4:start + 10] != b"1AY&SY":
            return None
        r = _Report(f"{fmt} signature; extent from the bytes that follow")
        return r.found(fmt, modality, start, len(data), start + len(magic), len(data), strong=True)

    return parse


# ---------------------------------------------------------------------------------------------
# anchors: (bytes, offset from the file's start, parser)

_Parser = Callable[[bytes, int], "Found | None"]

_ANCHORS: list[tuple[bytes, int, _Parser]] = [
    (b"BM", 0, _parse_bmp),
    (b"\x28\x00\x00\x00", 14, _parse_bmp),
    (b"\x7c\x00\x00\x00", 14, _parse_bmp),
    (b"\x89PNG", 0, _parse_png),
    (b"\r\n\x1a\n", 4, _parse_png),
    (b"IHDR", 12, _parse_png),
    (b"\xff\xd8\xff", 0, _parse_jpeg),
    (b"JFIF\x00", 6, _parse_jpeg),
    (b"Exif\x00\x00", 6, _parse_jpeg),
    (b"GIF8", 0, _parse_gif),
    (b"GIF", 0, _parse_gif),
    (b"F89a", 2, _parse_gif),
    (b"F87a", 2, _parse_gif),
    (b"89a", 3, _parse_gif),
    (b"87a", 3, _parse_gif),
    (b"II*", 0, _parse_tiff),
    (b"I*\x00", 1, _parse_tiff),
    (b"*\x00\x08\x00", 2, _parse_tiff),
    (b"MM\x00", 0, _parse_tiff),
    (b"M\x00*", 1, _parse_tiff),
    (b"\x00*\x00\x00", 2, _parse_tiff),
    (b"P6\n", 0, _parse_pnm),
    (b"P5\n", 0, _parse_pnm),
    (b"P4\n", 0, _parse_pnm),
    (b"P6 ", 0, _parse_pnm),
    (b"P5 ", 0, _parse_pnm),
    (b"RIFF", 0, _parse_riff),
    (b"WAVEfmt ", 8, _parse_riff),
    (b"AVI LIST", 8, _parse_riff),
    (b"WEBPVP8", 8, _parse_riff),
    (b"FORM", 0, _parse_iff),
    (b"AIFFCOMM", 8, _parse_iff),
    (b"AIFCFVER", 8, _parse_iff),
    (b".snd", 0, _parse_au),
    (b".sn", 0, _parse_au),
    (b"snd\x00\x00\x00", 1, _parse_au),
    (b"d\x00\x00\x00", 3, _parse_au),
    (b"fLaC", 0, _parse_flac),
    (b"\x00\x00\x22", 5, _parse_flac),
    (b"OggS", 0, _parse_ogg),
    (b"gS\x00\x02", 2, _parse_ogg),
    (b"ID3", 0, _parse_mp3),
    (b"D3\x03\x00", 1, _parse_mp3),
    (b"D3\x04\x00", 1, _parse_mp3),
    (b"\xff\xfb", 0, _parse_mp3),
    (b"\xff\xfa", 0, _parse_mp3),
    (b"\xff\xf3", 0, _parse_mp3),
    (b"\xff\xf2", 0, _parse_mp3),
    (b"\xff\xe3", 0, _parse_mp3),
    (b"\xff\xe2", 0, _parse_mp3),
    (b"YUV4", 0, _parse_y4m),
    (b"MPEG2 ", 4, _parse_y4m),
    (b"FRAME\n", 0, _parse_y4m_frames),
    (b"ftyp", 4, _parse_mp4),
    (b"isom", 8, _parse_mp4),
    (b"\x1aE\xdf\xa3", 0, _parse_ebml),
    (b"B\x86\x81\x01B\xf7", 5, _parse_ebml),
    (b"\x7fELF", 0, _parse_elf),
    (b"ELF\x02\x01\x01", 1, _parse_elf),
    (b"ELF\x01\x01\x01", 1, _parse_elf),
    (b"PK\x03", 0, _parse_zip),
    (b"K\x03\x04", 1, _parse_zip),
    (b"PK", 0, _parse_zip),
    (b"\x1f\x8b\x08", 0, _parse_gzip),
    (b"\x8b\x08\x00", 1, _parse_gzip),
    (b"\x8b\x08\x08", 1, _parse_gzip),
    (b"%PDF", 0, _parse_pdf),
    (b"DF-1.", 2, _parse_pdf),
    (b"-1.", 4, _parse_pdf),
    (b"SQLite f", 0, _parse_sqlite),
    (b"format 3\x00", 7, _parse_sqlite),
    *((magic, 0, _magic_only(fmt)) for fmt, (magic, _) in _MAGIC_ONLY.items()),
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
