"""Text that is not UTF-8: UTF-16 and the legacy 8-bit and CJK encodings (Latin-1, Windows-1252,
KOI8-R, Shift-JIS, Big5, ...).

Which encoding is charset-normalizer's call (a field library: it decodes a sample with every
candidate codec and keeps the one that reads as language); the rules here only choose which
bytes to ask about, cheaply and before it:
- legacy text never holds the C0 control bytes that binary data is full of, so only runs free of
  them are candidates; a run that moves like a signal (8-bit audio around 128, a gradient of
  pixels, also free of controls) is not asked about;
- UTF-16 puts a zero byte beside every ASCII character (a space, a line feed), always at the
  same parity, or starts with a byte-order mark; its decoded characters must then be writing, not controls.
A run is text when the encoding chosen decodes it with almost no errors.
"""

from __future__ import annotations

import codecs
import functools
import unicodedata

import numpy as np

__all__ = ["LEGACY_MIN", "controls", "legacy_runs", "legacy_text", "never_text", "plain_text", "signal_like",
           "unsignalled", "utf16_text", "codec_name"]

LEGACY_MIN = 1024  # a shorter run between other parts is left to the UTF-8 rule and statistics
_SAMPLE = 8192  # bytes of a run charset-normalizer reads (cut at a line end)
_MAX_ERRORS = 0.005  # share of undecodable characters a run of text may have (a damaged byte)

# bytes that never occur in text of any 8-bit encoding: C0 controls but tab, line feed, form
# feed, carriage return and escape (terminal colours in logs and help files), and DEL
_NEVER_TEXT = np.zeros(256, dtype=bool)
_NEVER_TEXT[:0x20] = True
_NEVER_TEXT[[0x09, 0x0A, 0x0C, 0x0D, 0x1B]] = False
_NEVER_TEXT[0x7F] = True
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[0x09, 0x0A, 0x0D, 0x20]] = True
_NEAR = np.zeros(511, dtype=bool)  # indexed by a byte difference + 255: is it 1 or 2 either way
_NEAR[[253, 254, 256, 257]] = True


@functools.lru_cache(maxsize=1)
def _charset_normalizer():
    try:
        import charset_normalizer

        return charset_normalizer
    except ImportError:  # not installed: only UTF-8 is recognised as text
        return None


def codec_name(encoding: str) -> str:
    """A codec's canonical name, as people write it: utf_16_le -> utf-16-le, latin_1 -> iso8859-1."""
    try:
        return codecs.lookup(encoding).name.replace("_", "-")
    except LookupError:
        return encoding


def controls(data: bytes) -> int:
    """How many bytes of data no text holds."""
    return int(np.count_nonzero(_NEVER_TEXT[np.frombuffer(data, dtype=np.uint8)]))


def never_text(data: bytes) -> bool:
    """Whether data holds a byte that text in no 8-bit encoding holds."""
    return bool(_NEVER_TEXT[np.frombuffer(data, dtype=np.uint8)].any())


def legacy_runs(arr: np.ndarray, start: int, end: int, min_len: int = LEGACY_MIN) -> list[tuple[int, int]]:
    """Runs in arr[start:end] at least min_len long that could be text in some encoding: no byte
    that text never holds."""
    a = arr[start:end]
    if a.size < min_len:
        return []
    bad = _NEVER_TEXT[a]
    bounds = np.concatenate(([-1], np.flatnonzero(bad), [a.size]))
    gaps = np.flatnonzero(np.diff(bounds) - 1 >= min_len)
    out = []
    for g in gaps.tolist():
        out.append((start + int(bounds[g]) + 1, start + int(bounds[g + 1])))
    return out


_BLOCK = 1024  # bytes per block judged for signal inside a run


def unsignalled(arr: np.ndarray, lo: int, hi: int, min_len: int) -> list[tuple[int, int]]:
    """The stretches of arr[lo:hi], min_len long or more, whose 1 KiB blocks do not move like a
    signal. A run free of controls can hold a sound or a picture beside text (neither holds a
    control byte); only the text blocks are asked about. All blocks at once: per-block mean
    differences at lags 1-3, with the tests of _signal_like."""
    n = hi - lo
    if n < _BLOCK:
        return [] if n < min_len or _signal_like(arr[lo:hi]) else [(lo, hi)]
    k = n // _BLOCK
    starts = lo + np.arange(k) * _BLOCK
    starts[-1] = hi - _BLOCK  # the last block ends with the run
    x = arr[starts[:, None] + np.arange(_BLOCK)].astype(np.int16)  # (k, _BLOCK)
    d1, d2, d3 = (np.abs(x[:, lag:] - x[:, :-lag]).mean(axis=1) for lag in (1, 2, 3))
    signal = (d1 < 0.6 * np.minimum(d2, d3)) | (d3 < 0.6 * d1) | (d1 < 6)
    out, begin = [], None
    for i, sig in enumerate(signal.tolist() + [True]):
        if not sig and begin is None:
            begin = lo + i * _BLOCK
        elif sig and begin is not None:
            end = hi if i >= k else lo + i * _BLOCK
            if end - begin >= min_len:
                out.append((begin, end))
            begin = None
    return out


def signal_like(data: bytes) -> bool:
    """_signal_like over bytes."""
    return _signal_like(np.frombuffer(data, dtype=np.uint8))


def _signal_like(a: np.ndarray) -> bool:
    """Whether bytes move like a signal or a fill: neighbours closer than bytes further apart
    (a sound), most pairs at some lag of 1-3 differing by 1 or 2 (a gradient), or one byte
    being most of them. Letters of any script rarely sit that close to each other's codes."""
    a = a[:_SAMPLE]  # the first lines say it: a signal is one from its start
    ink = a[~_WHITESPACE[a]]
    if ink.size < 16:
        return False
    if np.bincount(ink, minlength=256).max() > 0.6 * ink.size:
        return True
    x = ink.astype(np.int16)
    # a signal's bytes drift: they differ more the further apart they are; text jumps
    # between letters, spaces and punctuation as far at any distance
    d1, d2, d3 = (float(np.abs(x[lag:] - x[:-lag]).mean()) for lag in (1, 2, 3))
    if d1 < 0.6 * min(d2, d3) or d3 < 0.6 * d1 or d1 < 6:  # (the second: interleaved RGB, a pixel 3 bytes on)
        return True
    x += 255
    return max(float(_NEAR[x[lag:] - ink[:-lag]].mean()) for lag in (1, 2, 3)) > 0.3


def _sample(data: bytes, unit: int = 1) -> bytes:
    """The first _SAMPLE bytes cut after a line feed, so a multi-byte character is never split
    (unit: bytes per code unit, 2 for UTF-16, whose line feed has a zero byte beside it)."""
    if len(data) <= _SAMPLE:
        return data
    cut = data.rfind(b"\n", 0, _SAMPLE)
    return data[:cut + unit] if cut > _SAMPLE // 2 else data[:_SAMPLE]


def legacy_text(data: bytes, screened: bool = False) -> tuple[str, float, str] | None:
    """(encoding, confidence, reason) when bytes free of controls read as text in a legacy
    encoding; None when they do not (or charset-normalizer is missing).

    screened: the caller already knows the bytes hold no control and move like no signal."""
    cn = _charset_normalizer()
    if cn is None or len(data) < 16:
        return None
    if not screened and (never_text(data) or signal_like(data)):
        return None
    best = cn.from_bytes(_sample(data)).best()
    if best is None or best.encoding.startswith(("utf_16", "utf_32")):
        return None
    # a language charset-normalizer recognises, or bytes that decode with no chaos at all
    if best.chaos > (0.02 if best.language in ("", "Unknown") else 0.2):
        return None
    errors = _decode_errors(data, best.encoding)
    if errors > _MAX_ERRORS:
        return None
    confidence = round(0.95 - best.chaos - errors * 10, 3)
    return codec_name(best.encoding), confidence, (f"reads as {best.language} in {codec_name(best.encoding)} "
                                                   f"(charset-normalizer, chaos {best.chaos:.2f})")


def _decode_errors(data: bytes, encoding: str) -> float:
    text = data.decode(encoding, errors="replace")
    return text.count("\ufffd") / max(1, len(text))


def plain_text(arr: np.ndarray) -> bool:
    """Whether bytes that are all printable or valid UTF-8 (the caller checks) are text: any
    that do not move like a signal are, and a few dozen printable bytes are too short to show a
    signal (what a person typed: a value, a date); statistics are for the bytes that are not text."""
    return arr.size < 64 or not _signal_like(arr)


def utf16_text(data: bytes) -> tuple[str, float, str] | None:
    """(encoding, confidence, reason) when bytes are UTF-16 text: a byte-order mark, or zero
    bytes (the high half of ASCII characters) at one parity only; the decoded characters must be
    writing, and charset-normalizer must agree that it is UTF-16."""
    n = len(data) & ~1
    if n < 16:
        return None
    bom = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}.get(data[:2])
    arr = np.frombuffer(data, dtype=np.uint8, count=min(n, 2 * _SAMPLE))  # the cue shows in the first lines
    zeros_even, zeros_odd = float((arr[0::2] == 0).mean()), float((arr[1::2] == 0).mean())
    if bom is None:
        # (CJK text has few ASCII characters, so few zeros; but never at both parities)
        low, high = sorted((zeros_even, zeros_odd))
        if high < 0.005 or high < 2 * low:
            return None
        bom_free = "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"
    encoding = bom or bom_free
    try:  # the first lines must be writing before the whole is decoded
        head = data[2 if bom else 0:min(n, 2 * _SAMPLE)].decode(encoding, errors="replace")
        if not head or _not_writing(head.rstrip("\ufffd")) > _MAX_ERRORS:
            return None
        data[2 if bom else 0:n].decode(encoding)
    except UnicodeDecodeError:
        return None
    cn = _charset_normalizer()
    if cn is not None:
        sample = _sample(data[:n], 2)
        best = cn.from_bytes(sample[:len(sample) & ~1]).best()
        if best is None or not best.encoding.startswith("utf_16"):
            return None
    how = "byte-order mark" if bom else "zero bytes at one parity"
    return encoding, 0.95, f"UTF-16 ({how}), decodes to writing"


def _not_writing(text: str) -> float:
    """Share of characters that no writing uses: controls (but whitespace), unassigned code
    points, private use, lone surrogates, and bytes that decoded to nothing (U+FFFD)."""
    for size in (1024, _SAMPLE):  # a short look first: bytes that are no UTF-16 fail within it
        part = text[:size]
        bad = sum(1 for ch in part if ch == "\ufffd" or ch not in "\t\n\r\f"
                  and unicodedata.category(ch) in ("Cc", "Cn", "Co", "Cs"))
        if bad > _MAX_ERRORS * len(part) or len(part) < size:
            break
    return bad / max(1, len(part))
