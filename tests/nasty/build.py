"""Rebuild the nasty inputs in this folder: `python tests/nasty/build.py`.

Each file is something a person or a network could send that must be refused with a clear
message (or handled) quickly and in bounded memory, never crash anything. The 50 MB text file is
made by the tests themselves, not stored.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main() -> None:
    (HERE / "empty.bin").write_bytes(b"")
    (HERE / "one-byte.bin").write_bytes(b"\x42")
    # a BMP header declaring 65535 x 65535 24-bit pixels (12 GB) over 100 bytes of data
    bmp_header = b"BM" + struct.pack("<IHHI", 154, 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 65535, 65535, 1, 24, 0, 0, 2835, 2835, 0, 0)
    (HERE / "huge-dimensions.bmp").write_bytes(bmp_header + b"\x00" * 100)
    # a PNG decompression bomb: 20000 x 20000 8-bit grey (400 M pixels) of zeros; only the first
    # 16 KB of its deflate stream is kept, since readers must refuse it from the header alone
    width = height = 20_000
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    stream = b"".join(compressor.compress(row) for _ in range(2_000))[:16_384]
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b""))
    (HERE / "bomb.png").write_bytes(png)
    # a WAV whose RIFF and data sizes claim 4 GB over 1,000 bytes of samples
    wav = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
           + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
           + b"data" + struct.pack("<I", 0xFFFFFFF0) + b"\x80" * 1000)
    (HERE / "4gb-claim.wav").write_bytes(wav)
    # a Y4M declaring 100000 x 100000 frames (10 GB each)
    (HERE / "huge-frame.y4m").write_bytes(b"YUV4MPEG2 W100000 H100000 F30:1 Ip A1:1 Cmono\nFRAME\n" + b"\x00" * 1000)
    # invalid UTF-8: a lone continuation byte, an overlong sequence, a UTF-16 surrogate, a cut-off sequence
    (HERE / "invalid-utf8.txt").write_bytes(b"caf\xc3\xa9 \x80 \xc0\xaf \xed\xa0\x80 end \xe2\x82")


if __name__ == "__main__":
    main()
