"""The model's vocabulary: the 256 byte values, then a few control tokens above them.

Token ids 0-255 are the bytes themselves. The control tokens are the only ids above 255; they
never appear in a file, so when the model emits one it is declaring structure: a document starts
or ends, or the next part is of a given modality. `split_control_tokens` turns a token stream back
into plain bytes plus the positions of those declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from omnibyte.modality import Modality

__all__ = [
    "BYTE_VALUES",
    "ControlToken",
    "VOCAB_SIZE",
    "Boundary",
    "MODALITY_TAGS",
    "split_control_tokens",
    "join_control_tokens",
    "document_tokens",
]

BYTE_VALUES = 256


class ControlToken(IntEnum):
    DOC_START = 256
    DOC_END = 257
    TEXT = 258
    IMAGE = 259
    AUDIO = 260
    VIDEO = 261


VOCAB_SIZE = BYTE_VALUES + len(ControlToken)

MODALITY_TAGS: dict[Modality, ControlToken] = {
    Modality.TEXT: ControlToken.TEXT,
    Modality.IMAGE: ControlToken.IMAGE,
    Modality.AUDIO: ControlToken.AUDIO,
    Modality.VIDEO: ControlToken.VIDEO,
}
_TAG_MODALITIES = {tag: modality for modality, tag in MODALITY_TAGS.items()}


@dataclass(frozen=True)
class Boundary:
    """A control token the model emitted, placed between bytes.

    `offset` is the number of output bytes before the token, so a boundary at offset 10 sits
    between byte 9 and byte 10.
    """

    offset: int
    token: ControlToken

    @property
    def modality(self) -> Modality | None:
        """The modality the token announces, if it is a modality tag."""
        return _TAG_MODALITIES.get(self.token)


def split_control_tokens(tokens: Iterable[int], offset: int = 0) -> tuple[bytes, list[Boundary]]:
    """Split token ids into the bytes they carry and the boundaries the control tokens declare.

    `offset` is added to every boundary, so chunks of one stream can be split one at a time.
    """
    data = bytearray()
    boundaries: list[Boundary] = []
    for token in tokens:
        token = int(token)
        if 0 <= token < BYTE_VALUES:
            data.append(token)
        elif BYTE_VALUES <= token < VOCAB_SIZE:
            boundaries.append(Boundary(offset + len(data), ControlToken(token)))
        else:
            raise ValueError(f"token id {token} is outside the vocabulary (0-{VOCAB_SIZE - 1})")
    return bytes(data), boundaries


def join_control_tokens(data: bytes, boundaries: Iterable[Boundary]) -> list[int]:
    """The inverse of `split_control_tokens`: bytes with each boundary's token put back at its offset."""
    tokens: list[int] = []
    start = 0
    for boundary in sorted(boundaries, key=lambda b: b.offset):
        if not 0 <= boundary.offset <= len(data):
            raise ValueError(f"boundary offset {boundary.offset} is outside the {len(data)} bytes")
        tokens.extend(data[start:boundary.offset])
        tokens.append(int(boundary.token))
        start = boundary.offset
    tokens.extend(data[start:])
    return tokens


def document_tokens(parts: Sequence[tuple[Modality | None, bytes]], end: bool = False) -> list[int]:
    """The token ids of a document: DOC_START, then each part as its modality tag and its bytes.

    This is the one layout shared by training documents and prompts. A part with modality
    None is raw bytes with no tag; a tagged part with no bytes asks the model to begin a part of
    that modality. `end` closes the document with DOC_END.
    """
    tokens: list[int] = [int(ControlToken.DOC_START)]
    for modality, data in parts:
        if modality is not None:
            if modality not in MODALITY_TAGS:
                raise ValueError(f"no control token announces modality {modality!r}")
            tokens.append(int(MODALITY_TAGS[modality]))
        tokens.extend(data)
    if end:
        tokens.append(int(ControlToken.DOC_END))
    return tokens
