"""Binaries and documents: ELF, ZIP, gzip, PDF, SQLite, and formats named by their magic only."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable

from omnibyte.detector.formats.base import (
    BAD_SIZE,
    CUT_SHORT,
    DAMAGED_MAGIC,
    U16BE,
    U16LE,
    U32BE,
    U32LE,
    Found,
    Report,
    check_magic,
    mismatches,
    near_magic,
)
from omnibyte.modality import Modality


def parse_elf(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("ELF headers")
    if start + 52 > n or not near_magic(r, data, start, b"\x7fELF", "ELF"):
        return None
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
        r.damage("implausible header offsets", BAD_SIZE)
        extent = n - start
    # sections past the data mean it was cut short: only its headers are then verified
    solid = start + extent if start + extent <= n else start + 64
    return r.found("elf", Modality.BINARY, start, start + extent, solid, n, strong=True)


def parse_zip(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("ZIP directory")
    if start + 30 > n or not near_magic(r, data, start, b"PK\x03\x04", "PK"):
        return None
    version, flags, method = struct.unpack_from("<HHH", data, start + 4)
    if version > 100 or method not in (0, 1, 6, 8, 9, 12, 14, 19, 93, 95, 98, 99):
        return None
    eocd = start
    for _ in range(64):
        eocd = data.find(b"PK\x05\x06", eocd + 4)
        if eocd < 0 or eocd + 22 > n:
            break
        cd_size, cd_off, comment = struct.unpack_from("<IIH", data, eocd + 12)
        if (start + cd_off + cd_size == eocd
                and data[start + cd_off:start + cd_off + 4] in (b"PK\x01\x02", b"PK\x05\x06")):
            end = eocd + 22 + comment
            return r.found("zip", Modality.BINARY, start, end, end, n, strong=True)
    # no end-of-directory record of its own: walk the local entries while their sizes hold
    pos, entries = start, 0
    while pos + 30 <= n and (pos == start or data[pos:pos + 4] == b"PK\x03\x04"):
        csize, _, name, extra = struct.unpack_from("<IIHH", data, pos + 18)
        pos += 30 + name + extra + csize
        entries += 1
    r.damage("its end-of-directory record does not match", BAD_SIZE)
    if data[pos:pos + 4] == b"PK\x01\x02":
        eocd = data.find(b"PK\x05\x06", pos)
        if eocd >= 0 and eocd + 22 <= n:
            end = eocd + 22 + U16LE.unpack_from(data, eocd + 20)[0]
            return r.found("zip", Modality.BINARY, start, end, end, n, strong=True)
    return r.found("zip", Modality.BINARY, start, pos, pos, n, strong=entries > 1)


def parse_gzip(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("gzip member")
    if start + 18 > n:
        return None
    if data[start:start + 3] != b"\x1f\x8b\x08":
        if data[start + 1:start + 3] != b"\x8b\x08":
            return None
        r.damage("gzip magic damaged", DAMAGED_MAGIC)
    flags = data[start + 3]
    if flags & 0xE0 or data[start + 9] > 13 and data[start + 9] != 255:
        return None
    pos = start + 10
    if flags & 4:
        pos += 2 + U16LE.unpack_from(data, pos)[0]
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
        r.damage("deflate stream corrupt", BAD_SIZE)
        return r.found("gzip", Modality.BINARY, start, n, pos, n, strong=False)
    if not d.eof:
        r.damage("deflate stream cut short", CUT_SHORT)
        return r.found("gzip", Modality.BINARY, start, n, n, n, strong=True)
    end = min(read, n) - len(d.unused_data) + 8
    return r.found("gzip", Modality.BINARY, start, end, end, n, strong=True)


_PDF_CONTINUES = re.compile(rb"\s*(?:\d+\s+\d+\s+obj|xref|%)")


def parse_pdf(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("PDF to %%EOF")
    if data[start:start + 5] != b"%PDF-":
        if mismatches(data, start, b"%PDF-1.") > 1 or not data[start + 7:start + 8].isdigit():
            return None
        r.damage("%PDF magic damaged", DAMAGED_MAGIC)
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
        r.damage("no %%EOF", CUT_SHORT)
        # a PDF's streams hold JPEGs and text of its own: without %%EOF, it runs to the next PDF
        stop = nxt if nxt > 0 else n
        return r.found("pdf", Modality.BINARY, start, stop, stop, n, strong=True)
    return r.found("pdf", Modality.BINARY, start, end, end, n, strong=True)


def parse_sqlite(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("SQLite header")
    if start + 100 > n:
        return None
    if mismatches(data, start, b"SQLite format 3\x00") > 1:
        return None
    check_magic(r, data, start, b"SQLite format 3\x00", "SQLite")
    page = U16BE.unpack_from(data, start + 16)[0]
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return None
    change, pages = struct.unpack_from(">II", data, start + 24)
    valid_for = U32BE.unpack_from(data, start + 92)[0]
    if pages == 0 or valid_for != change:
        r.damage("page count not valid", BAD_SIZE)
        end = n
        return r.found("sqlite", Modality.BINARY, start, end, start + 100, n, strong=True)
    end = start + page * pages
    return r.found("sqlite", Modality.BINARY, start, end, end if end <= n else start + 100, n, strong=True)


# formats named by signature only: their extent is whatever the statistics after them agree on
MAGIC_ONLY = {
    "7z": (b"7z\xbc\xaf\x27\x1c", Modality.BINARY),
    "xz": (b"\xfd7zXZ\x00", Modality.BINARY),
    "bzip2": (b"BZh", Modality.BINARY),
    "zstd": (b"\x28\xb5\x2f\xfd", Modality.BINARY),
    "class": (b"\xca\xfe\xba\xbe\x00\x00", Modality.BINARY),
    "wasm": (b"\x00asm\x01\x00\x00\x00", Modality.BINARY),
}


def magic_only(fmt: str) -> Callable[[bytes, int], Found | None]:
    magic, modality = MAGIC_ONLY[fmt]

    def parse(data: bytes, start: int) -> Found | None:
        if fmt == "bzip2" and data[start + 4:start + 10] != b"1AY&SY":
            return None
        r = Report(f"{fmt} signature; extent from the bytes that follow")
        return r.found(fmt, modality, start, len(data), start + len(magic), len(data), strong=True)

    return parse


# ---------------------------------------------------------------------------------------------
# containers that hold text of their own (strings, names, docstrings): binary by their structure,
# whatever statistics their parts show


def parse_pyc(data: bytes, start: int) -> Found | None:
    """Compiled Python: a two-byte version number, CR LF, flags and a source stamp, then the
    marshalled code object, which runs to the end of the file (marshal declares no size)."""
    n = len(data)
    r = Report("compiled Python header")
    version = U16LE.unpack_from(data, start)[0]
    if data[start + 2:start + 4] != b"\r\n" or not (3000 <= version < 4000 or 20121 <= version <= 62211):
        return None
    if version >= 3390:  # 3.7 and later: flags, then a stamp of 8 bytes
        flags, body = U32LE.unpack_from(data, start + 4)[0], start + 16
        if flags > 3:
            return None
    else:  # 3.3-3.6 add the source size to the timestamp; older ones have the timestamp only
        body = start + (12 if version >= 3230 and version < 20121 else 8)
    if body >= n or data[body] not in (0x63, 0xE3):  # TYPE_CODE, with or without FLAG_REF
        return None
    return r.found("pyc", Modality.BINARY, start, n, body + 1, n, strong=True)


def parse_mo(data: bytes, start: int) -> Found | None:
    """A gettext catalogue: two tables of (length, offset) for the original and translated
    strings, and a hash table; the file ends where the last of them ends."""
    n = len(data)
    r = Report("gettext catalogue tables")
    if start + 28 > n:
        return None
    e = "<" if data[start:start + 4] == b"\xde\x12\x04\x95" else ">"
    revision, count, originals, translations, hash_size, hash_at = struct.unpack_from(e + "6I", data, start + 4)
    if revision >> 16 > 1 or count > 1 << 20 or min(originals, translations) < 28:
        return None
    end = max(originals, translations) + 8 * count
    if hash_size:
        end = max(end, hash_at + 4 * hash_size)
    for table in (originals, translations):
        entries = data[start + table:start + table + 8 * count]
        if len(entries) < 8 * count:
            r.damage("string table cut short", CUT_SHORT)
            break
        for length, offset in struct.iter_unpack(e + "II", entries):
            end = max(end, offset + length + 1)
    return r.found("gettext-catalogue", Modality.BINARY, start, start + end, min(n, start + end), n, strong=True)


def parse_ar(data: bytes, start: int) -> Found | None:
    """An ar archive (static libraries, Debian packages): 60-byte member headers, each with a
    decimal size, walked to the last."""
    n = len(data)
    r = Report("ar members")
    if data[start:start + 8] != b"!<arch>\n":
        return None
    pos = start + 8
    while pos + 60 <= n and data[pos + 58:pos + 60] == b"`\n":
        try:
            size = int(data[pos + 48:pos + 58].decode("ascii").strip() or "0")
        except (UnicodeDecodeError, ValueError):
            break
        pos += 60 + size + (size & 1)
    return r.found("ar", Modality.BINARY, start, pos, min(pos, n), n, strong=True)


def parse_tar(data: bytes, start: int) -> Found | None:
    """A POSIX tar archive: 512-byte headers with an octal size and a checksum, walked to the
    two zero blocks that end it."""
    n = len(data)
    r = Report("tar headers")
    pos = start
    while pos + 512 <= n:
        header = data[pos:pos + 512]
        if header == bytes(512):
            pos += 1024
            break
        if header[257:262] != b"ustar" and pos == start:
            return None
        try:
            size = int(header[124:136].split(b"\x00")[0].strip() or b"0", 8)
            checksum = int(header[148:156].split(b"\x00")[0].strip() or b"0", 8)
        except ValueError:
            break
        if checksum != sum(header[:148]) + 256 + sum(header[156:]):
            if pos == start:
                return None
            r.damage("header checksum wrong", BAD_SIZE)
            break
        pos += 512 + (size + 511) // 512 * 512
    if pos == start:
        return None
    # archives are written in records of 20 blocks: the zeros up to the record's end are the archive's
    while pos < n and (pos - start) % 10240 and data[pos:pos + 512] == bytes(512):
        pos += 512
    return r.found("tar", Modality.BINARY, start, pos, min(pos, n), n, strong=True)


def parse_sfnt(data: bytes, start: int) -> Found | None:
    """A TrueType or OpenType font: a table directory of (tag, checksum, offset, length)."""
    n = len(data)
    r = Report("font table directory")
    if data[start:start + 4] not in (b"\x00\x01\x00\x00", b"OTTO", b"true", b"typ1"):
        return None
    tables = U16BE.unpack_from(data, start + 4)[0]
    if not 1 <= tables <= 200 or start + 12 + 16 * tables > n:
        return None
    end = 12 + 16 * tables
    for i in range(tables):
        tag, _, offset, length = struct.unpack_from(">4sIII", data, start + 12 + 16 * i)
        if not all(32 <= c < 127 for c in tag) or offset < 12 + 16 * tables:
            return None
        end = max(end, offset + length)
    end = min(end + (-end) % 4, max(end, n - start))  # tables are padded to four bytes
    return r.found("font", Modality.BINARY, start, start + end, start + end, n, strong=True)


def parse_woff(data: bytes, start: int) -> Found | None:
    """WOFF and WOFF2 web fonts: the header declares the whole file's length."""
    n = len(data)
    r = Report("WOFF header")
    if data[start:start + 4] not in (b"wOFF", b"wOF2") or start + 44 > n:
        return None
    length = U32BE.unpack_from(data, start + 8)[0]
    tables = U16BE.unpack_from(data, start + 12)[0]
    if length < 44 or not 1 <= tables <= 200:
        return None
    return r.found("woff", Modality.BINARY, start, start + length, min(n, start + length), n, strong=True)


def parse_npy(data: bytes, start: int) -> Found | None:
    """A NumPy array: a text header that declares dtype and shape, then the array's bytes
    (object arrays are pickles, which run to the end)."""
    n = len(data)
    r = Report("NumPy array header")
    major = data[start + 6] if start + 10 <= n else 0
    if data[start:start + 6] != b"\x93NUMPY" or major not in (1, 2, 3):
        return None
    size_at, fmt = (start + 8, U16LE) if major == 1 else (start + 8, U32LE)
    body = size_at + fmt.size + fmt.unpack_from(data, size_at)[0]
    header = data[size_at + fmt.size:body]
    if not header.lstrip().startswith(b"{") or body > n:
        return None
    m = re.search(rb"'descr':\s*'([<>|=]?)([a-zA-Z])(\d*)'.*'shape':\s*\(([\d,\s]*)\)", header)
    if m is None or m.group(2) == b"O" or not m.group(3):
        return r.found("npy", Modality.BINARY, start, n, body, n, strong=True)
    count = 1
    for dim in m.group(4).split(b","):
        if dim.strip():
            count *= int(dim)
    end = body + count * int(m.group(3)) * (4 if m.group(2) == b"U" else 1)
    return r.found("npy", Modality.BINARY, start, end, min(end, n), n, strong=True)


def parse_pickle(data: bytes, start: int) -> Found | None:
    """A pickle of protocol 2 or later, its opcodes walked (never run) to STOP."""
    import pickletools

    n = len(data)
    r = Report("pickle opcodes to STOP")
    if data[start] != 0x80 or not 2 <= data[start + 1] <= 5:
        return None
    stream = _Window(data, start)
    ops = 0
    try:
        for op, _, pos in pickletools.genops(stream):
            ops += 1
            if op.name == "STOP":
                end = start + pos + 1
                return r.found("pickle", Modality.BINARY, start, end, end, n, strong=ops > 2) if ops > 2 else None
    except Exception:  # not a pickle: genops says so by raising
        return None
    return None


class _Window:
    """A file-like view of data from `start`, for pickletools.genops."""

    def __init__(self, data: bytes, start: int):
        self.data, self.pos, self.start = data, start, start

    def read(self, k: int = -1) -> bytes:
        end = len(self.data) if k < 0 else self.pos + k
        out = self.data[self.pos:end]
        self.pos += len(out)
        return out

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos, self.pos + 65536)
        end = len(self.data) if end < 0 else end + 1
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def tell(self) -> int:
        return self.pos - self.start


def parse_typelib(data: bytes, start: int) -> Found | None:
    """A GObject typelib: its magic, then a header whose `size` field (offset 40) is the file's."""
    n = len(data)
    r = Report("GObject typelib header")
    if data[start:start + 16] != b"GOBJ\nMETADATA\r\n\x1a" or start + 64 > n:
        return None
    size = U32LE.unpack_from(data, start + 40)[0]
    if size < 64:
        return None
    return r.found("typelib", Modality.BINARY, start, start + size, min(n, start + size), n, strong=True)
