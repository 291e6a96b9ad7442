"""Text's native format is UTF-8 without a byte-order mark.

Uploads in other Unicode encodings (announced by a BOM) are transcoded; bytes that are not UTF-8
at all are read as Windows-1252, the most common legacy encoding. Decoding never drops a byte:
whatever is not valid UTF-8 is shown as `\\xNN`, so a reader sees exactly where the bytes went
wrong.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from omnibyte.codecs.common import NativeBytes, check_upload
from omnibyte.modality import Modality

__all__ = ["DecodedText", "encode_text", "decode_text", "looks_like_text"]

# Longest BOMs first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"),
)

# Control characters that real text uses; any other C0 control is a sign of binary data.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\b\x1b")
# A stray control character or two should not turn a text file into "binary".
_MAX_CONTROL_FRACTION = 0.01


@dataclass(frozen=True)
class DecodedText:
    text: str
    repairs: tuple[str, ...] = ()


def looks_like_text(text: str) -> bool:
    """Whether decoded characters read as text: no NUL and almost no other control characters."""
    if "\x00" in text:
        return False
    controls = sum(1 for ch in text if ch < " " and ch not in _TEXT_CONTROLS)
    return controls <= _MAX_CONTROL_FRACTION * len(text)


def _bom_encoding(data: bytes) -> tuple[bytes, str, str] | None:
    for bom, encoding, name in _BOMS:
        if data.startswith(bom):
            return bom, encoding, name
    return None


def encode_text(data: bytes | str) -> NativeBytes:
    """Text upload (str, or bytes in UTF-8, a BOM-marked Unicode encoding or Windows-1252) -> UTF-8."""
    if isinstance(data, str):
        try:
            return NativeBytes(Modality.TEXT, check_upload(data.encode("utf-8"), "text"), ())
        except UnicodeEncodeError:
            # lone surrogates (e.g. from a broken JSON string) have no UTF-8 form
            fixed = data.encode("utf-8", errors="replace")
            bad = sum(1 for ch in data if "\ud800" <= ch <= "\udfff")
            return NativeBytes(Modality.TEXT, check_upload(fixed, "text"),
                               (f"replaced {bad} lone surrogate(s) that UTF-8 cannot hold with '?'",))
    data = check_upload(data, "text")
    found = _bom_encoding(data)
    if found is not None:
        bom, encoding, name = found
        body = data[len(bom):]
        try:
            text = body.decode(encoding)
            notes = [f"{name} text (byte-order mark): removed the mark"]
        except UnicodeDecodeError:
            text = body.decode(encoding, errors="replace")
            notes = [f"{name} text (byte-order mark) with invalid sequences: replaced them with U+FFFD"]
        if encoding != "utf-8":
            notes[0] += " and re-encoded as UTF-8"
        return NativeBytes(Modality.TEXT, text.encode("utf-8", errors="replace"), tuple(notes))
    try:
        data.decode("utf-8")
        return NativeBytes(Modality.TEXT, data, ("UTF-8 text, kept as is",))
    except UnicodeDecodeError:
        pass
    try:
        text, name = data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps every byte, so it always succeeds
        text, name = data.decode("latin-1"), "Latin-1"
    return NativeBytes(Modality.TEXT, text.encode("utf-8"),
                       (f"not valid UTF-8: read as {name} and re-encoded as UTF-8",))


def decode_text(data: bytes) -> DecodedText:
    """Native bytes -> text, with every invalid byte shown as `\\xNN`. Never raises."""
    data = bytes(data)
    # surrogateescape turns each undecodable byte into one U+DC80..U+DCFF code point, so they can
    # be counted and then rendered visibly instead of silently replaced
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    text = decoder.decode(data, final=False)
    tail = decoder.getstate()[0]
    text += decoder.decode(b"", final=True)
    shown = []
    invalid = 0
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            invalid += 1
            shown.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            shown.append(ch)
    repairs = []
    invalid_inside = invalid - len(tail)
    if invalid_inside:
        repairs.append(f"{invalid_inside} invalid UTF-8 byte(s) shown as \\xNN")
    if tail:
        repairs.append(f"ends mid-character: the last {len(tail)} byte(s) begin a character that never finishes,"
                       " shown as \\xNN")
    return DecodedText("".join(shown), tuple(repairs))
