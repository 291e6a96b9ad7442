"""Keep generated pictures, sounds and videos well-formed: the bytes their format decides.

Each native format (codecs/) has bytes that the format fixes and the content does not:

    image  32x32 BMP   a 54-byte header, always the same; 3,072 pixel bytes; 3,126 bytes in all
    audio  8 kHz WAV   a 44-byte header, the same but for two length fields (the second follows
                       from the first); then exactly that many sample bytes (and a pad byte if odd)
    video  16x16 Y4M   a 37-byte header, always the same; 8 frames of `FRAME\\n` + 256 luma bytes

A small byte model puts a little probability on other bytes at each of those places, and one
wrong byte among thousands leaves a file that does not decode: a frame marker one byte late, a
picture that ends 3 bytes short. `FormatGuard` follows each sample through its media parts and,
at each step, says which tokens keep the part well-formed: the fixed bytes are forced, a part may
not end (no control token) before its length, and once complete only a control token may follow.
Content bytes (pixels, samples, luma) are left entirely to the model.

Like utf8_guard.py this is a decoding constraint, not something the model learnt, and the
evaluation reports validity with and without it. A part whose prompt bytes already break the
format (a damaged upload) is left alone: the guard never fights the prompt.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np

from omnibyte.codecs import BMP_BYTES, FRAME_COUNT, SAMPLE_RATE, Y4M_BYTES
from omnibyte.codecs.audio import WAV_HEADER_BYTES, wav_header
from omnibyte.codecs.image import BMP_HEADER
from omnibyte.codecs.video import FRAME_MARKER, Y4M_HEADER
from omnibyte.generation.sample_guard import ANYTHING, SampleGuard
from omnibyte.vocab import BYTE_VALUES, MODALITY_TAGS, VOCAB_SIZE, ControlToken

__all__ = ["FormatGuard"]

_WAV_TEMPLATE = wav_header(0, SAMPLE_RATE)  # bytes 4-7 (RIFF size) and 40-43 (data size) vary
_WAV_LENGTH_FIELDS = set(range(4, 8)) | set(range(40, 44))
_FRAME_BYTES = (Y4M_BYTES - len(Y4M_HEADER)) // FRAME_COUNT
# the longest sound a generated header may declare: byte 7 of the RIFF size is 0 and byte 6 at
# most 7, so under 2**19 bytes, about 65 s at 8 kHz (uploads are cut to 60 s)
_WAV_SIZE_TOP_BYTE2 = 0x07

_MEDIA_TAGS = set(MODALITY_TAGS.values()) - {ControlToken.TEXT}
_CONTROLS = np.zeros(VOCAB_SIZE, dtype=bool)
_CONTROLS[BYTE_VALUES:] = True


@lru_cache(maxsize=None)
def _bytes_in(low: int, high: int, step: int = 1) -> np.ndarray:
    """Only bytes low..high (every `step`-th): a control token here would cut the part short."""
    allowed = np.zeros(VOCAB_SIZE, dtype=bool)
    allowed[low:high + 1:step] = True
    return allowed


def _exactly(byte: int) -> np.ndarray:
    return _bytes_in(byte, byte)


_ANY_BYTE = _bytes_in(0, 255)


class _Part:
    """One sample's place inside a media part: which format, how many bytes so far, its length."""

    __slots__ = ("tag", "pos", "header", "length", "pad_at", "broken")

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.pos = 0  # bytes of the part so far
        self.header = bytearray()  # its first bytes: the WAV length fields are read from them
        # the whole part's length; a WAV's is known once its header is
        self.length = {ControlToken.IMAGE: BMP_BYTES, ControlToken.VIDEO: Y4M_BYTES}.get(tag)
        self.pad_at = None  # a WAV's, set with its length
        self.broken = False  # the prompt broke the format: stand aside

    def allowed(self) -> np.ndarray:
        pos = self.pos
        if self.broken:
            return ANYTHING
        if self.length is not None and pos >= self.length:
            return _CONTROLS
        if self.tag == ControlToken.IMAGE:
            return _exactly(BMP_HEADER[pos]) if pos < len(BMP_HEADER) else _ANY_BYTE
        if self.tag == ControlToken.VIDEO:
            if pos < len(Y4M_HEADER):
                return _exactly(Y4M_HEADER[pos])
            in_frame = (pos - len(Y4M_HEADER)) % _FRAME_BYTES
            return _exactly(FRAME_MARKER[in_frame]) if in_frame < len(FRAME_MARKER) else _ANY_BYTE
        return self._wav_allowed(pos)

    def _wav_allowed(self, pos: int) -> np.ndarray:
        if pos >= WAV_HEADER_BYTES:
            # the pad byte after an odd data chunk is a zero
            return _exactly(0) if pos == self.pad_at else _ANY_BYTE
        if pos not in _WAV_LENGTH_FIELDS:
            return _exactly(_WAV_TEMPLATE[pos])
        if pos >= 40:  # the data size follows from the RIFF size sampled before it
            riff_size = struct.unpack_from("<I", self.header, 4)[0]
            return _exactly((riff_size - 36).to_bytes(4, "little")[pos - 40])
        # the RIFF size, sampled low byte first: even (36 + samples + pad), at least 38 (one
        # sample and its pad), small enough to be a sound (_WAV_SIZE_TOP_BYTE2)
        if pos == 4:
            return _bytes_in(0, 254, 2)
        if pos == 5:
            return _bytes_in(1 if self.header[4] < 38 else 0, 255)
        if pos == 6:
            return _bytes_in(0, _WAV_SIZE_TOP_BYTE2)
        return _exactly(0)

    def feed(self, byte: int) -> None:
        # only a prompt byte can break the format (sampled ones are masked); a prompt's WAV length
        # fields are checked together once its header is complete
        length_field = self.tag == ControlToken.AUDIO and self.pos in _WAV_LENGTH_FIELDS
        if not self.broken and not length_field and not self.allowed()[byte]:
            self.broken = True
        self.pos += 1
        if self.pos <= WAV_HEADER_BYTES:
            self.header.append(byte)
        if self.tag == ControlToken.AUDIO and self.pos == WAV_HEADER_BYTES:
            riff_size = struct.unpack_from("<I", self.header, 4)[0]
            data_size = struct.unpack_from("<I", self.header, 40)[0]
            # a prompt's header may declare an odd length (then a pad byte follows)
            self.broken = self.broken or riff_size != 36 + data_size + data_size % 2
            self.length = WAV_HEADER_BYTES + data_size + data_size % 2
            self.pad_at = WAV_HEADER_BYTES + data_size  # the pad byte's place when the length is odd


class _State:
    """One sample: outside any media part, or inside one."""

    __slots__ = ("part",)

    def __init__(self) -> None:
        self.part: _Part | None = None

    def feed(self, token: int) -> None:
        if token >= BYTE_VALUES:
            # a media tag starts a part; any other control token ends the one we were in
            self.part = _Part(token) if token in _MEDIA_TAGS else None
        elif self.part is not None:
            self.part.feed(token)

    def allowed(self) -> np.ndarray:
        return ANYTHING if self.part is None else self.part.allowed()


class FormatGuard(SampleGuard):
    """Per sample: follow the tokens so far, then mask next-token logits to well-formed media.

    Start it with the prompt (its bytes are never changed: a media part the prompt has already
    broken is left alone), then `feed` each sampled token. Same interface as Utf8Guard.
    """

    def new_state(self) -> _State:
        return _State()
