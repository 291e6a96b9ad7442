"""Video: Y4M, MP4 (ISO boxes) and Matroska/WebM (EBML), each read for where it ends."""

from __future__ import annotations

import re

from omnibyte.detector.formats.base import (
    BAD_FIELD,
    BAD_SIZE,
    DAMAGED_MAGIC,
    U32BE,
    U64BE,
    Found,
    Report,
    check_magic,
    mismatches,
    near_magic,
    printable4,
)
from omnibyte.modality import Modality

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


def parse_y4m(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("Y4M frames")
    if mismatches(data, start, b"YUV4MPEG2 ") > 1:
        return None
    check_magic(r, data, start, b"YUV4MPEG2 ", "YUV4MPEG2")
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
        r.damage("bytes between header and first frame", BAD_FIELD)
    second = data.find(b"FRAME", first + 5, first + 5 + (1 << 22))
    marker = data.find(b"\n", first, first + 64) + 1 - first
    if marker <= 0:
        return None
    if frame <= 0 or (second > 0 and second != first + marker + frame and _plausible_gap(data, second, first)):
        # the size fields are damaged; the markers themselves say how far apart frames are
        if second < 0:
            return None
        r.damage("frame size from the header disagrees with the frame markers", BAD_SIZE)
        frame = second - first - marker
    if frame < 0:
        return None
    pos, frames, solid = first, 0, first
    while pos + 6 <= n:
        bad = mismatches(data, pos, b"FRAME")
        if bad > 1:
            break
        if bad:
            r.damage("FRAME marker damaged", BAD_FIELD / 2)
        eol = data.find(b"\n", pos, pos + 64)
        if eol < 0:
            break
        solid = eol + 1
        pos = solid + frame
        frames += 1
    # the last frame's pixels are raw bytes: only its marker is verified
    return r.found("y4m", Modality.VIDEO, start, pos, solid, n, strong=frames > 0 and r.confidence > 0.9)


def parse_y4m_frames(data: bytes, start: int) -> Found | None:
    """Y4M found by its FRAME markers: the header before them is damaged beyond reading."""
    n = len(data)
    second = data.find(b"FRAME\n", start + 6, start + 6 + (1 << 22))
    third = data.find(b"FRAME\n", second + 6, second + 6 + (second - start) + 1) if second > 0 else -1
    if second < 0 or third - second != second - start:
        return None  # two equal gaps between three markers, or it is not video
    frame = second - start - 6
    r = Report("Y4M frame markers (header unreadable)")
    r.damage("stream header damaged", DAMAGED_MAGIC)
    begin = start
    for token in (b"YUV4", b"MPEG2", b"PEG2 ", b" W", b" H"):
        hit = data.rfind(token, max(0, start - 128), start)
        if hit >= 0:
            line = data.rfind(b"\n", max(0, start - 128), start - 1)
            begin = min(begin, max(line + 1, hit - 9))
    pos, solid = start, start
    while pos + 6 <= n and mismatches(data, pos, b"FRAME\n") <= 1:
        solid = pos + 6
        pos = solid + frame
    return r.found("y4m", Modality.VIDEO, begin, pos, solid, n, strong=False)


def _plausible_gap(data: bytes, second: int, first: int) -> bool:
    return data[second:second + 6] == b"FRAME\n" and second - first > 6


_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"moof", b"mfra", b"sidx", b"styp",
              b"meta", b"pdin", b"emsg", b"prft", b"ssix", b"jumb", b"pnot", b"junk"}


def parse_mp4(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("MP4 boxes")
    if start + 16 > n:
        return None
    if not near_magic(r, data, start + 4, b"ftyp", "ftyp"):
        return None
    brand = data[start + 8:start + 12]
    if not printable4(brand) and not 8 <= U32BE.unpack_from(data, start)[0] <= 1024:
        return None
    pos, boxes, moov, overran, seen, resyncs = start, 0, None, False, set(), 0
    while pos + 8 <= n:
        size = U32BE.unpack_from(data, pos)[0]
        kind = data[pos + 4:pos + 8]
        if boxes and kind not in _MP4_BOXES:
            nxt = _mp4_resync(data, pos) if not {b"moov", b"mdat"} <= seen and resyncs < 4 else -1
            if nxt <= pos:
                break
            resyncs += 1
            r.damage("a box size is wrong; resynchronised on the next box", BAD_SIZE)
            pos = nxt
            continue
        seen.add(kind)
        head = 8
        if size == 1 and pos + 16 <= n:
            size, head = U64BE.unpack_from(data, pos + 8)[0], 16
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
            if h >= 4 and U32BE.unpack_from(data, h - 4)[0] >= 8]
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


def parse_ebml(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("EBML elements")
    if not near_magic(r, data, start, b"\x1aE\xdf\xa3", "EBML"):
        return None
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
            r.damage("no Segment after the header", BAD_FIELD)
            return r.found("webm", Modality.VIDEO, start, n, start + 8, n, strong=False)
        r.damage("EBML header size damaged", BAD_SIZE)
        pos = seg
    seg_id, id_len = _ebml_vint(data, pos, keep_marker=True)
    seg_size, size_len = _ebml_vint(data, pos + id_len)
    body = pos + id_len + size_len
    if _ebml_walk(data, body) == body:
        # the Segment's own size is damaged: its first child (a SeekHead or Info) shows where it starts
        child = min((h for h in (data.find(c, pos + 4, pos + 24) for c in _EBML_FIRST) if h >= 0), default=-1)
        if child > 0:
            r.damage("Segment size damaged", BAD_SIZE)
            body, seg_size = child, -1
    walked = _ebml_walk(data, body)
    end = body + seg_size if seg_size >= 0 else walked
    if seg_size >= 0 and end != walked and not (walked > n and end > n):
        r.damage("Segment size disagrees with its elements", BAD_SIZE)
        end = walked
    tracks = data[body:min(n, body + (1 << 16))]
    video = any(c in tracks for c in (b"V_VP8", b"V_VP9", b"V_AV1", b"V_MPEG", b"V_THEORA", b"V_MS"))
    modality = Modality.VIDEO if video or b"A_" not in tracks else Modality.AUDIO
    return r.found("webm" if doc == b"webm" else "mkv", modality, start, end, min(end, n), n, strong=True)
