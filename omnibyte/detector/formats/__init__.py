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

from omnibyte.detector.formats.anchors import find_formats
from omnibyte.detector.formats.base import Found, cut_found

__all__ = ["Found", "find_formats", "cut_found"]
