"""Audio: Sun/NeXT AU, FLAC, Ogg and MPEG audio (MP3), each read for where it ends."""

from __future__ import annotations

import struct

import numpy as np

from omnibyte.detector.formats.base import (
    BAD_FIELD,
    BAD_SIZE,
    CUT_SHORT,
    DAMAGED_MAGIC,
    U32LE,
    Found,
    Report,
    mismatches,
)
from omnibyte.modality import Modality


def parse_au(data: bytes, start: int) -> Found | None:
    n = len(data)
    if start + 24 > n or mismatches(data, start, b".snd") > 1:
        return None
    offset, size, encoding, rate, channels = struct.unpack_from(">IIIII", data, start + 4)
    checks = [24 <= offset <= 1 << 16, 1 <= encoding <= 27, 0 < channels <= 64, 0 < rate <= 1 << 20]
    bad = mismatches(data, start, b".snd")
    if checks.count(False) + bad > 1:
        return None
    if not checks[0]:
        offset = 24  # what every writer uses when there is no annotation
    r = Report(f"Sun/NeXT header, encoding {encoding}, {rate} Hz")
    if bad:
        r.damage(".snd magic damaged", DAMAGED_MAGIC)
    if not all(checks):
        r.damage("implausible header field", BAD_FIELD)
    if size == 0xFFFFFFFF:
        r.damage("data size unknown", BAD_FIELD)
        return r.found("au", Modality.AUDIO, start, n, start + offset, n, strong=True)
    return r.found("au", Modality.AUDIO, start, start + offset + size, start + offset, n, strong=True)


def parse_flac(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("FLAC metadata and frames")
    streaminfo = data[start + 5:start + 8] == b"\x00\x00\x22"  # a 34-byte first block
    if data[start:start + 4] != b"fLaC":
        if mismatches(data, start, b"fLaC") > 1 or not streaminfo:
            return None
        r.damage("fLaC magic damaged", DAMAGED_MAGIC)
    min_frame = max_frame = 0
    if streaminfo and start + 18 <= n:
        min_frame = int.from_bytes(data[start + 12:start + 15], "big")
        max_frame = int.from_bytes(data[start + 15:start + 18], "big")
    elif not streaminfo:
        r.damage("STREAMINFO header damaged", BAD_FIELD)
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
        r.damage("metadata block headers damaged", BAD_FIELD)
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
        r.damage("last frame cut short", CUT_SHORT)
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


def parse_ogg(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("Ogg pages")
    pos, pages, video, audio, serials, page, seq = start, 0, False, False, set(), start, -1
    while pos + 27 <= n:
        bad = mismatches(data, pos, b"OggS\x00")
        if bad and pages:
            # a damaged page length: the next page of one of our streams is the way on
            nxt = data.find(b"OggS\x00", page + 27, page + 65536)
            ours = nxt >= 0 and (data[nxt + 14:nxt + 18] in serials or U32LE.unpack_from(data, nxt + 18)[0] == seq + 1)
            if not ours or nxt + 27 > n or data[nxt + 5] & 2:
                break
            r.damage("a page is damaged; resynchronised on the next page", BAD_SIZE)
            pos, bad = nxt, 0
        if bad > 1:
            break
        if bad:
            r.damage("OggS magic damaged", DAMAGED_MAGIC)
        if pages and data[pos + 5] & 2 and data[pos + 14:pos + 18] not in serials and not data[page + 5] & 2:
            break  # a new stream begins after ours ended: another file
        serials.add(data[pos + 14:pos + 18])
        seq = U32LE.unpack_from(data, pos + 18)[0]
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


def parse_mp3(data: bytes, start: int) -> Found | None:
    n = len(data)
    r = Report("MPEG audio frames")
    pos = start
    tagged = False
    if data[start + 1:start + 3] == b"D3" and start + 10 <= n and data[start + 3] in (2, 3, 4):
        if data[start] != ord("I"):
            r.damage("ID3 magic damaged", DAMAGED_MAGIC)
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
            r.damage("first frame header damaged", DAMAGED_MAGIC)
            start = back
    if pos < n and data[pos:pos + 3] == b"TAG" and pos + 128 <= n:
        pos += 128
    # a last frame running past the data is cut short; the frames before it are verified
    return r.found("mp3", Modality.AUDIO, start, pos, pos if pos <= n else last, n, strong=frames >= 4 or tagged)
