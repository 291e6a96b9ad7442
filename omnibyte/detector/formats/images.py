"""Images: BMP, PNG, JPEG, GIF, TIFF and PNM, each read for where it ends."""

from __future__ import annotations

import re
import struct
import zlib

from omnibyte.detector.formats.base import (
    BAD_FIELD,
    BAD_SIZE,
    CUT_SHORT,
    DAMAGED_MAGIC,
    U16BE,
    U32BE,
    U32LE,
    Found,
    Report,
    check_magic,
    mismatches,
    printable4,
)
from omnibyte.modality import Modality

_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}
_BMP_DEPTHS = (1, 4, 8, 16, 24, 32)  # bits per pixel
# writers may pad the file a few bytes past its last row, and count them in the file-size field
_BMP_SIZE_SLACK = 4


def parse_bmp(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 30 > n:
        return None
    r = Report("BMP header")
    bad_magic = check_magic(r, data, start, b"BM", "BM")
    size, reserved, offset, dib = struct.unpack_from("<IIII", data, start + 2)
    if dib == 12:
        w, h, planes, bpp = struct.unpack_from("<HHHH", data, start + 18)
        compression, colours = 0, 0
    else:
        w, h, planes, bpp, compression = struct.unpack_from("<iiHHI", data, start + 18)
        colours = U32LE.unpack_from(data, start + 46)[0] if start + 50 <= n else 0
    checks = {
        "info-header size": dib in _BMP_DIB_SIZES,
        "planes": planes == 1,
        "bits per pixel": bpp in _BMP_DEPTHS,
        "width": 0 < w <= 1 << 16,
        "height": 0 < abs(h) <= 1 << 16,
        "compression": compression in (0, 1, 2, 3, 4, 5, 6),
        "reserved": reserved == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if bad_magic + len(failed) > 2 or not (checks["info-header size"] or not bad_magic):
        return None
    if checks["width"] and checks["height"] and not checks["bits per pixel"]:
        # a damaged depth, as a model's generated header can have: the file-size field may still
        # say which depth the pixels that follow were laid out with
        bpp = _bmp_depth_from_size(w, h, offset, size) or bpp
        checks["bits per pixel"] = bpp in _BMP_DEPTHS
    if not (checks["width"] and checks["height"] and checks["bits per pixel"]):
        return None  # without the layout there is no way to tell where it ends
    for name in failed:
        r.damage(f"bad {name}", BAD_FIELD)
    palette = (colours or (1 << bpp if bpp <= 8 else 0)) * (3 if dib == 12 else 4)
    header_end = 14 + (dib if dib in _BMP_DIB_SIZES else 40)
    if not (header_end <= offset <= header_end + palette + 1024):
        r.damage(f"pixel offset {offset} implausible", BAD_FIELD)
        offset = header_end + min(palette, 1024)
    computed = offset + _bmp_pixel_bytes(w, h, bpp)
    if compression in (1, 2, 4, 5):  # compressed pixels: only the size fields know
        computed = size if offset < size <= 1 << 28 else computed
    if not 0 <= size - computed <= _BMP_SIZE_SLACK:
        r.damage(f"file-size field {size} disagrees with the {computed} bytes the header implies", BAD_SIZE)
    # pixel rows are raw bytes: nothing in them can confirm the extent, so only the header is solid
    return r.found("bmp", Modality.IMAGE, start, start + computed, start + min(offset, computed), n,
                   strong=not bad_magic and not failed)


def _bmp_pixel_bytes(width: int, height: int, bpp: int) -> int:
    """The uncompressed pixel array: each row padded to a multiple of 4 bytes."""
    return abs(height) * ((width * bpp + 31) // 32 * 4)


def _bmp_depth_from_size(width: int, height: int, offset: int, size: int) -> int | None:
    """The one uncompressed depth whose rows fill the file-size field after the offset, if any."""
    fits = [bpp for bpp in _BMP_DEPTHS
            if 0 <= size - (offset + _bmp_pixel_bytes(width, height, bpp)) <= _BMP_SIZE_SLACK]
    return fits[0] if len(fits) == 1 else None


def parse_png(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("PNG chunks")
    if mismatches(data, start, b"\x89PNG\r\n\x1a\n") + mismatches(data, start + 12, b"IHDR") > 2:
        return None
    check_magic(r, data, start, b"\x89PNG\r\n\x1a\n", "PNG")
    pos, solid, ended, bad_crc, frames = start + 8, start + 8, False, 0, 0
    while pos + 12 <= n:
        length = U32BE.unpack_from(data, pos)[0]
        ctype = data[pos + 4:pos + 8]
        if not (ctype.isalpha() and printable4(ctype)) or length > 1 << 31:
            if not (pos == start + 8 and length == 13):  # a damaged IHDR is still the IHDR
                break
        stop = pos + 12 + length
        if stop > n:
            solid = pos
            pos = stop
            break
        if zlib.crc32(memoryview(data)[pos + 4:pos + 8 + length]) != U32BE.unpack_from(data, pos + 8 + length)[0]:
            bad_crc += 1
        if ctype == b"acTL" and length >= 8:
            frames = U32BE.unpack_from(data, pos + 8)[0]
        pos = solid = stop
        if ctype == b"IEND":
            ended = True
            break
    if pos == start + 8:
        return None
    if bad_crc:
        r.damage(f"{bad_crc} chunk CRC{'s' * (bad_crc > 1)} wrong", min(0.3, BAD_FIELD * bad_crc))
    end = pos
    if not ended and pos <= n:
        iend = data.find(b"IEND\xaeB`\x82", pos - 12 if pos >= 12 else 0)
        if pos < n and 0 <= iend < n and _hits_before(data, pos, iend):
            r.damage("chunk walk broken; resumed at IEND", BAD_SIZE)
            end = solid = iend + 8
        elif pos < n:
            r.damage("chunk walk broken before IEND", BAD_SIZE)
    modality = Modality.VIDEO if frames > 1 else Modality.IMAGE
    return r.found("png", modality, start, end, solid, n, strong=r.confidence >= 0.9)


def _hits_before(data: bytes, pos: int, target: int) -> bool:
    """No other PNG starts between pos and target, so target's IEND is this file's."""
    return data.find(b"\x89PNG", pos, target) < 0 and target - pos < 1 << 24


_JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}


def parse_jpeg(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("JPEG markers")
    if data[start:start + 3] != b"\xff\xd8\xff":
        # found by its APP0/APP1 or first-table marker: the SOI itself is damaged
        if mismatches(data, start, b"\xff\xd8\xff") > 1 or data[start + 3] not in (0xE0, 0xE1, 0xDB, 0xEE, 0xE2):
            return None
        r.damage("SOI marker damaged", DAMAGED_MAGIC)
    pos, segments, scans, resyncs = start + 2, 0, 0, 0
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            nxt = _jpeg_resync(data, pos) if resyncs < 4 and scans == 0 else -1
            if nxt < 0:
                break
            r.damage("a segment length is wrong; resynchronised on the next marker", BAD_SIZE)
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
        length = U16BE.unpack_from(data, pos + 2)[0]
        nxt = pos + 2 + length
        if marker != 0xDA and (length < 2 or nxt + 2 > n or data[nxt] != 0xFF) and resyncs < 4 and scans == 0:
            again = _jpeg_resync(data, pos + 4)
            if again > 0:
                r.damage("a segment length is wrong; resynchronised on the next marker", BAD_SIZE)
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
        r.damage("no end-of-image marker", CUT_SHORT)
        return r.found("jpeg", Modality.IMAGE, start, n, n, n, strong=True)
    r.damage("marker stream broken before end-of-image", BAD_SIZE)
    return r.found("jpeg", Modality.IMAGE, start, pos, pos, n, strong=scans > 0)


_JPEG_TABLES = (b"\xff\xdb", b"\xff\xc4", b"\xff\xc0", b"\xff\xc2", b"\xff\xda", b"\xff\xe1", b"\xff\xfe")


def _jpeg_resync(data: bytes, pos: int) -> int:
    """The next table, frame or scan marker within 1 KiB of pos, or -1."""
    hits = [h for h in (data.find(m, pos, pos + (1 << 16)) for m in _JPEG_TABLES) if h >= 0]
    hits = [h for h in hits if h + 4 <= len(data) and U16BE.unpack_from(data, h + 2)[0] >= 2]
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


def parse_gif(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("GIF blocks")
    head = data[start:start + 6]
    if head not in (b"GIF87a", b"GIF89a"):
        if mismatches(data, start, b"GIF89a") > 1 and mismatches(data, start, b"GIF87a") > 1:
            return None
        r.damage("GIF magic damaged", DAMAGED_MAGIC)
        if start + 13 <= n and data[start + 10] & 0x80 == 0 and data[start + 13] not in (0x21, 0x2C):
            return None
    if start + 13 > n:
        return None
    w, h, packed = struct.unpack_from("<HHB", data, start + 6)
    if w == 0 or h == 0:
        r.damage("zero screen size", BAD_FIELD)
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
                r.damage("bad LZW code size", BAD_FIELD)
            pos = _gif_subblocks(data, pos + 1)
            images += 1
        else:
            break
    if images == 0 and pos < n:
        return None
    modality = Modality.VIDEO if images > 1 else Modality.IMAGE
    if pos >= n:
        r.damage("no trailer", CUT_SHORT)
        return r.found("gif", modality, start, n, n, n, strong=True)
    r.damage("block stream broken before the trailer", BAD_SIZE)
    return r.found("gif", modality, start, pos, pos, n, strong=images > 0)


def _gif_subblocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return n


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8,
                    18: 8}


def parse_tiff(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 8 > n:
        return None
    le, be = mismatches(data, start, b"II*\x00"), mismatches(data, start, b"MM\x00*")
    if min(le, be) > 1:
        return None
    e = "<" if le <= be else ">"
    r = Report("TIFF directories")
    if min(le, be):
        r.damage("TIFF magic damaged", DAMAGED_MAGIC)
    u16, u32 = struct.Struct(e + "H"), struct.Struct(e + "I")
    ifd = u32.unpack_from(data, start + 4)[0]
    if start + ifd + 2 > n or ifd < 8:
        if min(le, be) == 0 and start + ifd + 2 > n and ifd < 1 << 28:
            r.damage("first directory lies past the data", CUT_SHORT)
            return r.found("tiff", Modality.IMAGE, start, start + ifd + 2, n, n, strong=True)
        r.damage("first-directory offset damaged", BAD_SIZE)
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


def parse_pnm(data: bytes, start: int) -> Found | None:
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
    r = Report("PNM header")
    return r.found("ppm", Modality.IMAGE, start, m.end() + size, m.end(), len(data), strong=True)
