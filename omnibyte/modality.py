"""The kinds of content OmniByte knows: one name per modality, shared by vocab, codecs,
detector, CLI and UI."""

from enum import StrEnum

__all__ = ["Modality"]


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    # anything that is none of the above (executables, archives, random data)
    BINARY = "binary"
