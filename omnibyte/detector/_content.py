"""What bytes without a signature are: text runs, then statistics for the rest.

Text is a rule: a run of printable ASCII and complete UTF-8 sequences, in any script, that does
not move as smoothly as a signal does (dark pixels and quiet audio are printable ASCII too).

Everything else is cut where its statistics change and each piece is named by them:
- zeros;
- interleaved RGB pixels: every third byte (same channel, next pixel) is closer than the next;
- smooth signals, whose successive differences grow with the lag: 8-bit PCM audio when centred
  on 128 (silence) and symmetric around it, grey pixels otherwise;
- rows of pixels of any other kind: some lag of 8 bytes or more (a row) brings each byte much
  closer to its partner than the next byte is;
- compressed or random bytes: near 8 bits of entropy and no smoothness at any lag;
- anything else is binary of unknown format.
All of it is numpy over blocks and cumulative sums; Python only loops over pieces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from omnibyte.modality import Modality

__all__ = ["Piece", "text_mask", "text_runs", "describe_text", "describe_texts", "segment_statistics",
           "segment_statistics_many", "classify_piece"]

MIN_TEXT = 16  # a shorter printable run inside binary data is chance, unless it is all there is
_BLOCK = 64  # bytes per block for change detection; boundaries are then refined to the byte
_MIN_PIECE_BLOCKS = 2
_PENALTY = 8  # split gain (in squared feature units x blocks) a change must beat
_ZERO_RUN = 48  # a run of 0x00 this long stands on its own
_ROW_RATIO = 0.5  # rows: at some lag of 8+ bytes, bytes at most half as far apart (RMS) as neighbours


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    modality: Modality
    format: str
    confidence: float
    reason: str


# ---------------------------------------------------------------------------------------------
# text

# byte classes: 1 printable ASCII or text whitespace, 2 continuation, 3/4/5 lead of a 2/3/4-byte
# sequence, 0 anything that is never text (controls, DEL, C0, C1, F5-FF)
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[0x20:0x7F] = 1
_CLASS[[0x09, 0x0A, 0x0C, 0x0D]] = 1
_CLASS[0x80:0xC0] = 2
_CLASS[0xC2:0xE0] = 3
_CLASS[0xE0:0xF0] = 4
_CLASS[0xF0:0xF5] = 5


def text_mask(arr: np.ndarray) -> np.ndarray:
    """True where a byte belongs to printable ASCII or to a complete, valid UTF-8 sequence."""
    n = arr.size
    cls = _CLASS[arr]
    cont = np.zeros(n + 3, dtype=bool)
    cont[:n] = cls == 2
    second = np.zeros(n + 1, dtype=np.uint8)
    second[:n] = arr
    second = second[1:]  # the byte after each position (0 past the end)
    ok2 = (cls == 3) & cont[1:n + 1]
    ok3 = (cls == 4) & cont[1:n + 1] & cont[2:n + 2]
    # E0 needs A0-BF next (no overlong forms), ED needs 80-9F (no surrogates); checked only
    # where a sequence is otherwise complete, which is rare outside text
    at = np.flatnonzero(ok3)
    lead, nxt = arr[at], second[at]
    ok3[at[((lead == 0xE0) & (nxt < 0xA0)) | ((lead == 0xED) & (nxt >= 0xA0))]] = False
    ok4 = (cls == 5) & cont[1:n + 1] & cont[2:n + 2] & cont[3:n + 3]
    at = np.flatnonzero(ok4)
    lead, nxt = arr[at], second[at]
    ok4[at[((lead == 0xF0) & (nxt < 0x90)) | ((lead == 0xF4) & (nxt >= 0x90))]] = False
    good = cls == 1
    good |= ok2 | ok3 | ok4
    tail1 = ok2 | ok3 | ok4
    good[1:] |= tail1[:-1]
    tail2 = ok3 | ok4
    good[2:] |= tail2[:-2]
    good[3:] |= ok4[:-3]
    return good


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in mask."""
    if mask.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    # the mask is constant between these bounds, alternating from mask[0]
    bounds = np.concatenate(([0], np.flatnonzero(mask[1:] != mask[:-1]) + 1, [mask.size]))
    first = 0 if mask[0] else 1
    return bounds[first:-1:2], bounds[first + 1::2]


def text_runs(arr: np.ndarray, min_len: int = MIN_TEXT) -> list[tuple[int, int]]:
    """Runs of text bytes at least min_len long that could read as text; runs split by one or
    two stray bytes (a damaged character) are joined when both sides are long enough to be text
    by themselves. Runs without the spaces or multi-byte characters writing has are dropped
    here, all at once, before describe_text looks at the rest one by one."""
    starts, ends = _runs(text_mask(arr))
    keep = ends - starts >= 8
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return []
    joined = np.flatnonzero(starts[1:] - ends[:-1] > 2)
    s = starts[np.concatenate(([0], joined + 1))]
    e = ends[np.concatenate((joined, [ends.size - 1]))]
    keep = e - s >= min_len
    s, e = s[keep], e[keep]
    if s.size == 0:
        return []
    n = (e - s).astype(np.float64)
    spaces, multibyte, letters = _counts(arr, s, e)
    # the same thresholds describe_text applies, for short runs (words) and long ones
    short = n < 64
    words = (spaces >= np.where(short, 0.08, 0.03) * n) & (letters >= np.where(short, 0.5, 0.2) * n)
    maybe = words | (multibyte >= np.maximum(4, n // 8)) | ((n >= 128) & (letters > 0.6 * n))
    if not maybe.all():
        maybe |= _lined(arr, s, e)
    if arr.size <= MIN_TEXT * 4:
        maybe[:] = True  # a short input may be all text without looking like prose
    return list(zip(s[maybe].tolist(), e[maybe].tolist()))


_MAX_LINE = 1024  # mean bytes per line that text (a table, a program, prose) stays under


def _lined(arr: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Which runs [s, e) are lines: two line feeds or more, lines of text length on average.
    Printable pixels and sounds never hold a line feed: reaching 0x0A from the printable range
    passes through the controls that end a run."""
    cum = np.concatenate(([0], np.cumsum(arr == 0x0A, dtype=np.int64)))
    feeds = cum[e] - cum[s]
    return (feeds >= 2) & ((e - s) <= _MAX_LINE * (feeds + 1))


def _counts(arr: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whitespace, multi-byte leads and letters/digits in each run [s, e), as floats. One pass:
    a table packs the three flags of a byte into fields of one integer, so one sum counts all."""
    if int((e - s).max()) >= 1 << _FIELD:  # a field could overflow into the next: count apart
        cum = [np.concatenate(([0], np.cumsum(f[arr], dtype=np.int64))) for f in (_WHITESPACE, _CLASS >= 3, _IS_LETTER)]
        return tuple((c[e] - c[s]).astype(np.float64) for c in cum)  # type: ignore[return-value]
    lo = int(s[0])
    # sums over each run and each stretch between runs (ignored); every index inside the array
    bounds = np.stack([s, e], axis=1).ravel() - lo
    span = _PACKED[arr[lo:int(e[-1])]]
    total = np.add.reduceat(span, bounds[:-1])[::2]  # the last run sums to the end of the span
    mask = np.uint64((1 << _FIELD) - 1)
    return tuple(((total >> np.uint64(k * _FIELD)) & mask).astype(np.float64) for k in range(3))  # type: ignore[return-value]


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[0x09, 0x0A, 0x0D, 0x20]] = True


_NEAR = np.zeros(511, dtype=bool)  # indexed by a byte difference + 255: is it 1 or 2 either way
_NEAR[[253, 254, 256, 257]] = True


_IS_LETTER = np.zeros(256, dtype=bool)
_IS_LETTER[0x30:0x3A] = _IS_LETTER[0x41:0x5B] = _IS_LETTER[0x61:0x7B] = True
_FIELD = 21  # bits per count in _PACKED: runs up to 2 MiB are counted in one pass
_PACKED = (_WHITESPACE.astype(np.uint64) | (_CLASS >= 3).astype(np.uint64) << np.uint64(_FIELD)
           | _IS_LETTER.astype(np.uint64) << np.uint64(2 * _FIELD))


def describe_text(data: bytes, arr: np.ndarray, start: int, end: int, whole: bool) -> tuple[float, str] | None:
    """(confidence, reason) if data[start:end], a run of text bytes, reads as text; else None.

    `whole`: the run is all there is between two known parts, so a short one still counts."""
    return describe_texts(arr, [(start, end, whole)])[0]


def describe_texts(arr: np.ndarray, runs: list[tuple[int, int, bool]]) -> list[tuple[float, str] | None]:
    """describe_text for many (start, end, whole) runs: every statistic it weighs is a count
    over a run, so all runs' bytes are laid end to end and counted in one pass each."""
    out: list[tuple[float, str] | None] = [None] * len(runs)
    long = []
    for k, (start, end, whole) in enumerate(runs):
        if end - start >= MIN_TEXT:
            long.append(k)
        elif whole and end > start:
            out[k] = (0.6, "short printable run between known parts")
    if not long:
        return out
    cat = np.concatenate([arr[runs[k][0]:runs[k][1]] for k in long])  # (total,) the runs end to end
    n = np.array([runs[k][1] - runs[k][0] for k in long])
    at = np.concatenate(([0], np.cumsum(n)[:-1]))  # where each run starts in cat
    ws = _WHITESPACE[cat]
    ink = ~ws
    spaces, letters, multibyte, feeds = (_sums(f, at) for f in (ws, _IS_LETTER[cat], _CLASS[cat] >= 3, cat == 0x0A))
    # the byte that fills most of a run's ink (its non-whitespace bytes)
    owner = np.repeat(np.arange(len(long)), n)
    fill = np.bincount(owner[ink] * 256 + cat[ink], minlength=len(long) * 256).reshape(len(long), 256).max(axis=1)
    units = [_sums(unit, at, n - 2 * p + 1) for p, unit in _repeated_units(cat, ink)]
    # smoothness: how much a run moves like a signal, the largest share over lags 1-3 of byte
    # pairs that differ by 1 or 2. Text in any script stays under 0.2 at every lag; printable
    # pixels (lag 3 for RGB) and audio go well over. Only pairs of letters and punctuation
    # count: the bytes of multi-byte characters, and digits where there are many (a number),
    # sit close together in any text
    keep = ~(ws | (cat >= 0x80))
    plain = keep & ~((cat >= 0x30) & (cat <= 0x39))
    few_digits = _sums(plain, at)
    a = cat.astype(np.int16) + 255  # _NEAR's index for a difference
    pairs = []
    for lag in (1, 2, 3):
        near = _NEAR[a[lag:] - cat[:-lag]]
        for k_ in (keep, plain):
            both = k_[lag:] & k_[:-lag]
            pairs.append((_sums(both, at, n - lag), _sums(near & both, at, n - lag)))
    for i, k in enumerate(long):
        size, whole = int(n[i]), runs[k][2]
        inks = size - int(spaces[i])
        if inks < 0.1 * size or int(fill[i]) > 0.5 * inks:
            continue  # one byte over and over: a flat area of pixels, a fill, not writing
        if max((float(u[i]) / (size - 2 * p + 1) for p, u in zip((2, 3, 4), units)), default=0.0) > 0.25:
            continue  # a unit of 2-4 bytes over and over: a flat area of RGB(A) pixels
        variant = 1 if float(few_digits[i]) / size > 0.3 else 0
        smooth = 0.0
        for counted, close in pairs[variant::2]:
            if counted[i]:
                smooth = max(smooth, float(close[i]) / int(counted[i]))
        lined = feeds[i] >= 2 and size <= _MAX_LINE * (feeds[i] + 1)
        out[k] = _text_verdict(size, int(multibyte[i]), smooth, float(spaces[i]) / size, float(letters[i]) / size,
                               whole, bool(lined))
    return out


def _sums(flags: np.ndarray, at: np.ndarray, length: np.ndarray | None = None) -> np.ndarray:
    """Sums of flags over [at, at + length) for runs laid end to end from `at` (each whole run
    when length is None); the positions past a run's length are left out."""
    if length is None:
        return np.add.reduceat(flags, at, dtype=np.int64)
    bounds = np.stack([at, at + length], axis=1).ravel()
    bounds = bounds[:-1] if bounds[-1] >= flags.size else bounds  # the last sums to the end
    return np.add.reduceat(flags, bounds, dtype=np.int64)[::2]


def _repeated_units(cat: np.ndarray, ink: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """For units of 2-4 bytes: (p, flags) where a byte that is not whitespace starts a unit
    the p bytes after it repeat, over runs laid end to end. A flat area of RGB(A) pixels is one
    colour's bytes over and over; writing in any script rarely repeats even one character."""
    out = []
    for p in (2, 3, 4):
        eq = cat[p:] == cat[:-p]  # byte i equals byte i + p
        m = eq.size - p + 1
        unit = eq[:m] & ink[:m]
        for k in range(1, p):
            unit &= eq[k:k + m]
        out.append((p, unit))
    return out


def _text_verdict(n: int, multibyte: int, smooth: float, spaces: float, letters: float, whole: bool, lined: bool
                  ) -> tuple[float, str] | None:
    """describe_text's decision from a run's length and statistics."""
    if lined:  # text wins: lines of printable bytes are text, whatever they hold (numbers, code)
        return 0.95, f"lines of text ({letters:.0%} letters/digits, smoothness {smooth:.2f})"
    if multibyte >= max(4, n // 8) and smooth < 0.3:
        return 0.97, f"valid UTF-8 run ({multibyte} multi-byte characters)"
    short = n < 64  # a short run must look like words, not merely printable
    if smooth < (0.15 if short else 0.22) and spaces >= (0.08 if short else 0.03) \
            and letters >= (0.5 if short else 0.3 if n < 256 else 0.2):
        return (0.97 if letters > 0.4 else 0.9,
                f"printable ASCII run ({letters:.0%} letters/digits, {spaces:.0%} spaces, smoothness {smooth:.2f})")
    if smooth < 0.32 and spaces >= 0.1 and letters >= 0.5:
        return 0.9, f"words: {letters:.0%} letters/digits, {spaces:.0%} spaces (smoothness {smooth:.2f})"
    if smooth < 0.1 and n >= 128 and letters > 0.6:
        return 0.75, f"printable ASCII run without spaces (encoded or minified?), smoothness {smooth:.2f}"
    if whole and (smooth < 0.25 or spaces >= 0.1 and smooth < 0.35):
        return 0.7, f"all printable between known parts ({letters:.0%} letters/digits, smoothness {smooth:.2f})"
    return None


def trim_text(arr: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """The run [start, end) without printable signal at either end: where a text part meets
    dark pixels or quiet audio, the printable run goes on past it, but stops reading like text."""
    n = end - start
    if n < 96:
        return start, end
    run = arr[start:end]
    a = run.astype(np.int16) + 255  # _NEAR's index for a difference
    close = np.zeros(n, dtype=bool)
    for lag in (1, 2, 3):
        close[lag:] |= _NEAR[a[lag:] - run[:-lag]]
    close &= ~_WHITESPACE[run]
    cum = np.zeros(n + 1)
    cum[1:] = np.cumsum(close)
    # the end: the split s maximising (tail mean - head mean) with the tail signal-like
    s = np.arange(32, n - 16)
    head, tail = cum[s] / s, (cum[n] - cum[s]) / (n - s)
    i = int(np.argmax(tail - head)) if s.size else -1
    # a piece that holds line feeds is text, never signal (see _lined): it is not trimmed off
    if i >= 0 and tail[i] > 0.45 and head[i] < 0.25 and np.count_nonzero(run[s[i]:] == 0x0A) < 2:
        end = start + int(s[i])
    s = np.arange(16, n - 32)
    head, tail = cum[s] / s, (cum[n] - cum[s]) / (n - s)
    i = int(np.argmax(head - tail)) if s.size else -1
    if i >= 0 and head[i] > 0.45 and tail[i] < 0.25 and np.count_nonzero(run[:s[i]] == 0x0A) < 2:
        start = start + int(s[i])
    return start, end


def text_format(data: bytes) -> str:
    """The kind of text: json, html, xml, svg, csv, source code (python, c, javascript, shell,
    perl, ruby), or plain utf-8."""
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"[") and len(data) <= 1 << 24:
        try:
            json.loads(data)
            return "json"
        except ValueError:
            pass
    low = head[:128].lower()
    if low.startswith((b"<!doctype html", b"<html")):
        return "html"
    if low.startswith(b"<svg") or (low.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "svg"
    if low.startswith(b"<?xml"):
        return "xml"
    if b"<html" in data[:1024].lower() and low.startswith(b"<"):
        return "html"
    if low.startswith(b"<") and re.match(rb"<[A-Za-z_][\w:.-]*[\s>/]", head) and data.rstrip().endswith(b">"):
        return "xml"
    return _source_kind(data[:4096]) or ("csv" if _is_csv(data[:8192]) else "utf-8")


# source code by what only it writes: a shebang, or statements at the start of a line
_SHEBANG = re.compile(rb"#![^\n]*\b(python|sh|bash|perl|node|ruby)")
_SOURCE = [("python", re.compile(rb"^(?:from [\w.]+ import |import [\w.]+\s*$|def \w+\(|class \w+[(:])", re.M)),
           ("c", re.compile(rb"^\s*#\s*(?:include\s*[<\"]|define \w+|ifndef \w+)", re.M)),
           ("javascript",
            re.compile(rb"^(?:function \w+\(|(?:const|let|var) \w+ = |export (?:default|function|const) )", re.M))]
_SHEBANG_KIND = {b"python": "python", b"sh": "shell", b"bash": "shell", b"perl": "perl", b"node": "javascript",
                 b"ruby": "ruby"}


def _source_kind(head: bytes) -> str | None:
    m = _SHEBANG.match(head)
    if m:
        return _SHEBANG_KIND[m.group(1)]
    return next((kind for kind, pattern in _SOURCE if pattern.search(head)), None)


def _is_csv(head: bytes) -> bool:
    """Rows with the same number (one or more) of one delimiter: a comma, semicolon, tab or bar."""
    lines = [line for line in head.split(b"\n")[:20] if line.strip()]
    if len(head) == 8192:
        lines = lines[:-1]  # the last may be cut
    if len(lines) < 2:
        return False
    for delimiter in (b",", b";", b"\t", b"|"):
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() >= 1:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# statistics


def _block_features(stretches: list[np.ndarray]) -> list[np.ndarray]:
    """(n_blocks, 4) features of each stretch's _BLOCK-byte blocks: level, spread, lag-1 and
    lag-3 roughness. The blocks of all stretches are computed as one array."""
    nbs = [a.size // _BLOCK for a in stretches]
    if not nbs:
        return []
    # (nb, B)
    x = np.concatenate([a[: nb * _BLOCK] for a, nb in zip(stretches, nbs)]).astype(np.float32).reshape(-1, _BLOCK)
    d1 = np.abs(np.diff(x, axis=1)).mean(axis=1)
    d3 = np.abs(x[:, 3:] - x[:, :-3]).mean(axis=1)
    f = np.stack([x.mean(axis=1) / 48, x.std(axis=1) / 32, np.log1p(d1), np.log1p(d3)], axis=1)
    return np.split(f, np.cumsum(nbs)[:-1])


def _best_splits(cum: np.ndarray, a: np.ndarray, b: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(gain, row) of the best single change point of each interval of rows [a, b) under an L2
    cost, from cumulative sums; every interval needs room for one (b - a >= 2 * min_size)."""
    count = b - a - 2 * min_size + 1  # candidate splits per interval
    first = np.concatenate(([0], np.cumsum(count)[:-1]))
    s = np.repeat(a + min_size - first, count) + np.arange(int(count.sum()))
    gain = _split_gains(cum, s, np.repeat(a, count), np.repeat(b, count))
    best = np.maximum.reduceat(gain, first)
    # the first candidate reaching its interval's best, as argmax picks
    at_best = np.flatnonzero(gain == np.repeat(best, count))
    return best, s[at_best[np.searchsorted(at_best, first)]]


def _split_gains(cum: np.ndarray, s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gain of splitting the rows [a, b) at s, for many (s, a, b) at once (one row each)."""
    n1 = (s - a)[:, None].astype(np.float64)
    n2 = (b - s)[:, None].astype(np.float64)
    left = cum[s] - cum[a]
    right = cum[b] - cum[s]
    return ((left / n1 - right / n2) ** 2 * (n1 * n2 / (n1 + n2))).sum(axis=1)


def _change_points(features: list[np.ndarray], penalty: float, min_size: int) -> list[list[int]]:
    """Binary segmentation of each feature series: split where the feature means change most,
    while it beats penalty. Every interval of every series is split in one pass per level."""
    cums, base = [], [0]
    for f in features:
        cum = np.zeros((f.shape[0] + 1, f.shape[1]))
        np.cumsum(f, axis=0, out=cum[1:])
        cums.append(cum)
        base.append(base[-1] + cum.shape[0])
    if not cums:
        return []
    cum = np.concatenate(cums)  # (sum of n + 1, F): series j's sums start at row base[j]
    out: list[list[int]] = [[] for _ in features]
    todo = [(base[j], base[j] + f.shape[0], j) for j, f in enumerate(features)]
    while todo:
        todo = [t for t in todo if t[1] - t[0] >= 2 * min_size]
        if not todo:
            break
        best, split = _best_splits(cum, np.array([t[0] for t in todo]), np.array([t[1] for t in todo]), min_size)
        nxt = []
        for (lo, hi, j), g, at in zip(todo, best.tolist(), split.tolist()):
            if at - base[j] > 0 and g > penalty:
                out[j].append(at - base[j])
                nxt += [(lo, at, j), (at, hi, j)]
        todo = nxt
    return [sorted(o) for o in out]


_REFINE = 2 * _BLOCK  # bytes either side of a block boundary searched for the byte it falls on
_LOG1P = np.log1p(np.arange(256, dtype=np.float32))  # log1p of every byte difference


def _refine(arr: np.ndarray, cuts: list[tuple[int, int, int]]) -> list[int]:
    """For each (lo, guess, hi), the byte in [lo, hi) where a two-piece fit of byte features
    around `guess` changes best; all windows of 2 * _REFINE bytes at once (padded to that)."""
    if not cuts:
        return []
    lo = np.array([max(lo, guess - _REFINE) for lo, guess, _ in cuts])
    hi = np.array([min(hi, guess + _REFINE) for _, guess, hi in cuts])
    size = hi - lo
    width = 2 * _REFINE
    idx = lo[:, None] + np.arange(width)  # (W, width)
    valid = idx < hi[:, None]
    x = arr[np.minimum(idx, arr.size - 1)].astype(np.int16)  # (W, width)
    d1 = np.zeros_like(x)
    d1[:, 1:] = np.abs(x[:, 1:] - x[:, :-1])
    d3 = np.zeros_like(x)
    d3[:, 3:] = np.abs(x[:, 3:] - x[:, :-3])
    # byte features: level, lag-1 and lag-3 roughness
    f = np.stack([x.astype(np.float32) / 48, _LOG1P[d1], _LOG1P[d3]], axis=2)  # (W, width, 3)
    f[~valid] = 0  # padding adds nothing to the sums
    cum = np.zeros((len(cuts), width + 1, 3))
    np.cumsum(f, axis=1, out=cum[:, 1:])
    out = [guess for _, guess, _ in cuts]
    ok = np.flatnonzero(size >= 8)
    if ok.size:
        rows = ok * (width + 1)  # window k's sums start at row k * (width + 1)
        _, at = _best_splits(cum.reshape(-1, 3), rows, rows + size[ok], 4)
        for k, s in zip(ok.tolist(), (at - rows).tolist()):
            if s > 0:
                out[k] = int(lo[k]) + s
    return out


def _zero_runs(arr: np.ndarray, start: int, end: int) -> list[tuple[int, int]]:
    a = arr[start:end]
    if a.tobytes().find(bytes(_ZERO_RUN)) < 0:
        return []
    starts, ends = _runs(a == 0)
    keep = ends - starts >= _ZERO_RUN
    return list(zip(starts[keep].tolist(), ends[keep].tolist()))


def classify_piece(a: np.ndarray) -> tuple[Modality, str, float, str]:
    """(modality, format, confidence, reason) of headerless bytes from their statistics."""
    n = a.size
    if n == 0:
        return Modality.BINARY, "unknown", 0.3, "empty"
    counts = np.bincount(a, minlength=256)
    zeros = counts[0] / n
    if zeros > 0.9:
        return Modality.BINARY, "zeros", round(0.6 + 0.39 * float(zeros), 3), f"{zeros:.0%} zero bytes"
    if n < 24:
        return Modality.BINARY, "unknown", 0.3, f"only {n} bytes without a signature"
    x = a.astype(np.int16)
    d1 = float(np.abs(x[1:] - x[:-1]).sum()) / (n - 1)
    d2 = float(np.abs(x[2:] - x[:-2]).sum()) / (n - 2)
    d3 = float(np.abs(x[3:] - x[:-3]).sum()) / (n - 3)
    size_trust = min(1.0, n / 2048)  # statistics of a few hundred bytes are weaker evidence
    if d3 < 0.55 * d1 and d1 > 2:
        strength = 1 - d3 / d1
        conf = 0.55 + 0.4 * strength * size_trust
        return Modality.IMAGE, "pixels", round(conf, 3), f"interleaved RGB: lag-3 difference {d3:.1f} vs lag-1 {d1:.1f}"
    pcm16 = _pcm16(a) if d1 > 15 else None  # 16-bit PCM alternates calm and busy bytes
    if pcm16 is not None:
        return pcm16
    smooth = (d2 + d3) / 2 / max(d1, 1e-9)
    median = int(np.searchsorted(np.cumsum(counts), (n + 1) // 2))
    asym = _asymmetry(counts)
    if smooth > 1.25 and d1 < 70 or smooth > 1.08 and abs(median - 128) <= 6 and asym < 0.3:
        mean = float(counts @ np.arange(256)) / n
        # PCM swings both ways around silence (128): its histogram mirrors itself there
        if abs(median - 128) <= 6 and abs(mean - 128) <= 8 and asym < 0.5:
            conf = 0.6 + 0.35 * size_trust * min(1.0, max(0.0, smooth - 1.1) * 2) * (1 - asym)
            return (Modality.AUDIO, "pcm", round(conf, 3),
                    f"smooth signal mirrored around 128 (median {median}, asymmetry {asym:.2f}): 8-bit PCM")
        conf = 0.55 + 0.3 * size_trust * min(1.0, max(abs(median - 128) / 32, asym))
        return (Modality.IMAGE, "pixels", round(conf, 3),
                f"smooth, not centred on 128 (median {median}, asymmetry {asym:.2f}): grey pixels")
    p = counts[counts > 0] / n
    entropy = float(-(p * np.log2(p)).sum())
    # the entropy a sample of n uniformly random bytes shows (its histogram is never flat)
    random_entropy = 8 - 255 / (2 * min(n, 1 << 16) * np.log(2))
    if entropy > random_entropy - 0.35 and 0.85 < d3 / max(d1, 1e-9) < 1.15:
        conf = 0.6 + 0.3 * size_trust
        return (Modality.BINARY, "high-entropy", round(conf, 3),
                f"entropy {entropy:.2f} bits/byte, no smoothness: compressed or random")
    stride = row_stride(a)  # only here: compressed bytes, the most common kind, never have rows
    if stride is not None:
        lag, ratio = stride
        conf = 0.55 + 0.35 * size_trust * min(1.0, (1 - ratio) * 1.5)
        return (Modality.IMAGE, "pixels", round(conf, 3),
                f"rows of {lag} bytes: each byte is {ratio:.0%} as far from the one a row below as from the next")
    return Modality.BINARY, "unknown", 0.4, f"entropy {entropy:.2f} bits/byte, no known statistics"


_MIN_ROW, _MAX_ROW = 8, 4096  # row lengths in bytes a raw image is looked for with


def row_stride(a: np.ndarray) -> tuple[int, float] | None:
    """(row length, ratio) when the bytes are rows of an image: at some lag of 8 bytes or more
    (a row of pixels) each byte is much closer to the byte that far on than to the next byte.
    Mean squared differences at every lag at once, from one FFT autocorrelation."""
    n = a.size
    top = min(_MAX_ROW, n // 4)
    if top <= _MIN_ROW:
        return None
    x = a.astype(np.float64) - float(a.mean())
    size = 1 << int(2 * n - 1).bit_length()
    spec = np.fft.rfft(x, size)
    cross = np.fft.irfft(spec * np.conj(spec), size)[:top + 1]  # sum_i x[i] x[i + lag]
    sq = np.concatenate(([0.0], np.cumsum(x * x)))
    lags = np.arange(1, top + 1)
    # sum over i < n - lag of (x[i + lag] - x[i])^2, divided by the pairs counted
    msd = (sq[n - lags] + (sq[n] - sq[lags]) - 2 * cross[1:]) / (n - lags)
    lag = _MIN_ROW + int(np.argmin(msd[_MIN_ROW - 1:]))
    ratio = float(np.sqrt(max(msd[lag - 1], 0.0) / max(msd[0], 1e-9)))
    return (lag, ratio) if ratio < _ROW_RATIO else None


def _asymmetry(counts: np.ndarray) -> float:
    """How far a histogram is from mirroring itself around 128: 0 perfectly, 1 not at all."""
    left, right = counts[127:0:-1], counts[129:256]
    return float(np.abs(left - right).sum() / max(1, (left + right).sum()))


def _pcm16(a: np.ndarray) -> tuple[Modality, str, float, str] | None:
    """16-bit PCM: every other byte (the high one) moves smoothly around 0, the others do not."""
    if a.size < 64:
        return None
    rough = []
    for phase in (0, 1):
        v = a[phase::2].view(np.int8).astype(np.int16)  # high bytes are signed
        rough.append(float(np.abs(np.diff(v)).mean()))
    smooth_phase = int(np.argmin(rough))
    lo, hi = min(rough), max(rough)
    if hi < 20 or lo > 0.3 * hi:
        return None
    high = a[smooth_phase::2].view(np.int8).astype(np.int16)
    if abs(float(np.median(high))) > 12:
        return None
    endian = "little" if (smooth_phase == 1) else "big"  # relative to where the piece starts
    conf = 0.6 + 0.3 * min(1.0, a.size / 4096) * (1 - lo / hi)
    return (Modality.AUDIO, "pcm16", round(conf, 3),
            f"16-bit PCM ({endian}-endian from here): high bytes move by {lo:.1f}, low bytes by {hi:.1f}")


def segment_statistics(arr: np.ndarray, start: int, end: int) -> list[Piece]:
    """Headerless bytes arr[start:end] cut where their statistics change, each piece named."""
    return segment_statistics_many(arr, [(start, end)])[0]


def segment_statistics_many(arr: np.ndarray, ranges: list[tuple[int, int]]) -> list[list[Piece]]:
    """segment_statistics for many ranges: block features and change points of all at once."""
    edges: list[list[int]] = []
    stretches: list[tuple[int, int, int]] = []  # (lo, hi, range) between zero runs, for change points
    for k, (start, end) in enumerate(ranges):
        cuts = [start]
        for zs, ze in _zero_runs(arr, start, end):
            cuts += [start + zs, start + ze]
        cuts.append(end)
        bounds = sorted(set(cuts))
        edges.append([start])
        for lo, hi in zip(bounds, bounds[1:]):
            if lo != start:
                edges[k].append(lo)
            a = arr[lo:hi]
            if a.size >= 2 * _MIN_PIECE_BLOCKS * _BLOCK and not (a[0] == 0 and np.all(a == 0)):
                stretches.append((lo, hi, k))
    feats = _block_features([arr[lo:hi] for lo, hi, _ in stretches])
    changes = _change_points(feats, _PENALTY, _MIN_PIECE_BLOCKS)
    cuts = [(lo, lo + b * _BLOCK, hi) for (lo, hi, _), bs in zip(stretches, changes) for b in bs]
    owner = [k for (_, _, k), bs in zip(stretches, changes) for _ in bs]
    for k, e in zip(owner, _refine(arr, cuts)):
        edges[k].append(e)
    out = []
    for (start, end), es in zip(ranges, edges):
        es = sorted(set(e for e in es if start <= e < end)) + [end]
        pieces = []
        for lo, hi in zip(es, es[1:]):
            if hi <= lo:
                continue
            modality, fmt, conf, reason = classify_piece(arr[lo:hi])
            pieces.append(Piece(lo, hi, modality, fmt, conf, reason))
        out.append(_merge_pieces(arr, pieces))
    return out


def _merge_pieces(arr: np.ndarray, pieces: list[Piece]) -> list[Piece]:
    """Join neighbours that got the same name, re-reading the joined bytes; pieces too short
    to judge join their larger neighbour."""
    changed = True
    while changed and len(pieces) > 1:
        changed = False
        out: list[Piece] = []
        for p in pieces:
            if out and (out[-1].format, out[-1].modality) == (p.format, p.modality):
                q = out.pop()
                big = p if p.end - p.start > q.end - q.start else q
                conf = (p.confidence * (p.end - p.start) + q.confidence * (q.end - q.start)) / (p.end - q.start)
                out.append(Piece(q.start, p.end, p.modality, p.format, round(conf, 3), big.reason))
                changed = True
            else:
                out.append(p)
        pieces = out
        # a weakly named smooth piece beside a better-named one is the same signal changing
        # (audio getting louder, a darker band of an image): join it when the joined bytes agree
        for i in range(len(pieces) - 1):
            a, b = pieces[i], pieces[i + 1]
            if ({a.format, b.format} == {"pcm", "pixels"} and a.reason.startswith("smooth")
                    and b.reason.startswith("smooth")):
                weak, strong = (a, b) if a.confidence < b.confidence else (b, a)
                if weak.confidence < 0.7 and weak.end - weak.start < strong.end - strong.start:
                    m, f, c, r = classify_piece(arr[min(a.start, b.start):max(a.end, b.end)])
                    if f == strong.format:
                        pieces[i:i + 2] = [Piece(a.start, b.end, m, f, c, r)]
                        changed = True
                        break
        if changed:
            continue
        # an unnamed piece beside a named one is often its edge (a flat band of an image, the
        # fade of a sound): join it when the joined bytes still read as the named one
        for i, x in enumerate(pieces):
            if x.format != "unknown":
                continue
            sides = [q for q in (pieces[i - 1] if i else None, pieces[i + 1] if i + 1 < len(pieces) else None)
                     if q is not None and q.format not in ("unknown", "zeros") and q.end - q.start > x.end - x.start]
            for q in sorted(sides, key=lambda q: q.start - q.end):
                lo, hi = min(q.start, x.start), max(q.end, x.end)
                m, f, c, r = classify_piece(arr[lo:hi])
                if (m, f) == (q.modality, q.format):
                    pieces[i:i + 1] = []
                    pieces[pieces.index(q)] = Piece(lo, hi, m, f, c, r)
                    changed = True
                    break
            if changed:
                break
        if changed:
            continue
        # an unnamed piece between two pieces of one kind, smaller than both, is part of them
        for i in range(1, len(pieces) - 1):
            a, x, b = pieces[i - 1], pieces[i], pieces[i + 1]
            if (x.format == "unknown" and (a.modality, a.format) == (b.modality, b.format)
                    and x.end - x.start < min(a.end - a.start, b.end - b.start)):
                pieces[i] = Piece(x.start, x.end, a.modality, a.format, a.confidence, a.reason)
                changed = True
                break
        if changed:
            continue
        # a piece of under two blocks between two others is noise in the change detection
        for i, p in enumerate(pieces):
            if p.end - p.start < 2 * _BLOCK and p.format != "zeros" and len(pieces) > 1:
                nb = [q for q in (pieces[i - 1] if i else None, pieces[i + 1] if i + 1 < len(pieces) else None) if q]
                host = max(nb, key=lambda q: q.end - q.start)
                pieces[i] = Piece(p.start, p.end, host.modality, host.format, host.confidence, host.reason)
                changed = True
                break
    return pieces
