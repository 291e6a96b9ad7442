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
from dataclasses import dataclass

import numpy as np

from ..modality import Modality

__all__ = ["Piece", "text_mask", "text_runs", "describe_text", "segment_statistics", "classify_piece"]

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
    # E0 needs A0-BF next (no overlong forms), ED needs 80-9F (no surrogates)
    ok3 &= ~((arr == 0xE0) & (second < 0xA0)) & ~((arr == 0xED) & (second >= 0xA0))
    ok4 = (cls == 5) & cont[1:n + 1] & cont[2:n + 2] & cont[3:n + 3]
    ok4 &= ~((arr == 0xF0) & (second < 0x90)) & ~((arr == 0xF4) & (second >= 0x90))
    good = cls == 1
    good |= ok2 | ok3 | ok4
    tail1 = ok2 | ok3 | ok4
    good[1:] |= tail1[:-1]
    tail2 = ok3 | ok4
    good[2:] |= tail2[:-2]
    good[3:] |= ok4[:-3]
    return good


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


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
    spaces = _count(_WHITESPACE[arr], s, e)
    multibyte = _count(_CLASS[arr] >= 3, s, e)
    letters = _count(_IS_LETTER[arr], s, e)
    # the same thresholds describe_text applies, for short runs (words) and long ones
    short = n < 64
    words = (spaces >= np.where(short, 0.08, 0.03) * n) & (letters >= np.where(short, 0.5, 0.2) * n)
    maybe = words | (multibyte >= np.maximum(4, n // 8)) | ((n >= 128) & (letters > 0.6 * n))
    if arr.size <= MIN_TEXT * 4:
        maybe[:] = True  # a short input may be all text without looking like prose
    return list(zip(s[maybe].tolist(), e[maybe].tolist()))


def _count(flags: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    cum = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    return (cum[e] - cum[s]).astype(np.float64)


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[0x09, 0x0A, 0x0D, 0x20]] = True


def text_smoothness(arr: np.ndarray) -> float:
    """How much a printable run moves like a signal: the largest share, over lags 1-3, of byte
    pairs that differ by 1 or 2 (whitespace and repeats aside). Text in any script stays under
    0.2 at every lag; printable pixels (lag 3 for RGB) and audio go well over."""
    if arr.size < 4:
        return 0.0
    a = arr.astype(np.int16)
    # pairs of letters and punctuation only: digits in a number and the bytes of multi-byte
    # characters sit close together in any text, so they say nothing
    skip = _WHITESPACE[arr] | (arr >= 0x80)
    digits = (arr >= 0x30) & (arr <= 0x39)
    if (~(skip | digits)).mean() > 0.3:
        skip = skip | digits
    worst = 0.0
    for lag in (1, 2, 3):
        both = ~(skip[lag:] | skip[:-lag])
        d = np.abs(a[lag:] - a[:-lag])
        counted = int(both.sum())
        if counted:
            worst = max(worst, float(((d <= 2) & (d > 0) & both).sum()) / counted)
    return worst


def repeated_units(arr: np.ndarray) -> float:
    """The largest share, over unit lengths 2-4, of positions that repeat the unit before them
    (whitespace aside): a flat area of RGB or RGBA pixels is one colour's bytes over and over,
    while writing in any script rarely repeats even one character twice in a row."""
    n = arr.size
    ink = ~_WHITESPACE[arr]
    worst = 0.0
    for p in (2, 3, 4):
        if n < 3 * p:
            break
        eq = arr[p:] == arr[:-p]  # (n - p,) byte i equals byte i + p
        m = eq.size - p + 1
        unit = eq[:m] & ink[:m]
        for k in range(1, p):
            unit &= eq[k:k + m]
        worst = max(worst, float(np.count_nonzero(unit)) / m)
    return worst


_IS_LETTER = np.zeros(256, dtype=bool)
_IS_LETTER[0x30:0x3A] = _IS_LETTER[0x41:0x5B] = _IS_LETTER[0x61:0x7B] = True


def describe_text(data: bytes, arr: np.ndarray, start: int, end: int, whole: bool) -> tuple[float, str] | None:
    """(confidence, reason) if data[start:end], a run of text bytes, reads as text; else None.

    `whole`: the run is all there is between two known parts, so a short one still counts."""
    run = arr[start:end]
    n = end - start
    if n < MIN_TEXT:
        return (0.6, "short printable run between known parts") if whole and n else None
    ink = run[~_WHITESPACE[run]]
    if ink.size < 0.1 * n or np.bincount(ink, minlength=256).max() > 0.5 * ink.size:
        return None  # one byte over and over: a flat area of pixels, a fill, not writing
    if repeated_units(run) > 0.25:
        return None  # a unit of 2-4 bytes over and over: a flat area of RGB(A) pixels
    multibyte = int(np.count_nonzero(_CLASS[run] >= 3))
    smooth = text_smoothness(run)
    if multibyte >= max(4, n // 8) and smooth < 0.3:
        return 0.97, f"valid UTF-8 run ({multibyte} multi-byte characters)"
    spaces = float(_WHITESPACE[run].mean())
    letters = float(_IS_LETTER[run].mean())
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
    a = run.astype(np.int16)
    close = np.zeros(n, dtype=np.float64)
    for lag in (1, 2, 3):
        d = np.abs(a[lag:] - a[:-lag])
        close[lag:] = np.maximum(close[lag:], ((d <= 2) & (d > 0)).astype(np.float64))
    close[_WHITESPACE[run]] = 0.0
    cum = np.concatenate(([0.0], np.cumsum(close)))
    # the end: the split s maximising (tail mean - head mean) with the tail signal-like
    s = np.arange(32, n - 16)
    head, tail = cum[s] / s, (cum[n] - cum[s]) / (n - s)
    i = int(np.argmax(tail - head)) if s.size else -1
    if i >= 0 and tail[i] > 0.45 and head[i] < 0.25:
        end = start + int(s[i])
    s = np.arange(16, n - 32)
    head, tail = cum[s] / s, (cum[n] - cum[s]) / (n - s)
    i = int(np.argmax(head - tail)) if s.size else -1
    if i >= 0 and head[i] > 0.45 and tail[i] < 0.25:
        start = start + int(s[i])
    return start, end


def text_format(data: bytes) -> str:
    """The kind of text: json, html, xml, svg, or plain utf-8."""
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
    return "utf-8"


# ---------------------------------------------------------------------------------------------
# statistics


def _block_features(a: np.ndarray) -> np.ndarray:
    """(n_blocks, 4) features of _BLOCK-byte blocks: level, spread, lag-1 and lag-3 roughness."""
    nb = a.size // _BLOCK
    x = a[: nb * _BLOCK].astype(np.float32).reshape(nb, _BLOCK)  # (nb, B)
    d1 = np.abs(np.diff(x, axis=1)).mean(axis=1)
    d3 = np.abs(x[:, 3:] - x[:, :-3]).mean(axis=1)
    return np.stack([x.mean(axis=1) / 48, x.std(axis=1) / 32, np.log1p(d1), np.log1p(d3)], axis=1)


def _best_split(cum: np.ndarray, a: int, b: int, min_size: int) -> tuple[float, int]:
    """Best single change point of the rows [a, b) under an L2 cost, from cumulative sums."""
    s = np.arange(a + min_size, b - min_size + 1)
    if s.size == 0:
        return 0.0, -1
    n1 = (s - a)[:, None].astype(np.float64)
    n2 = (b - s)[:, None].astype(np.float64)
    left = cum[s] - cum[a]
    right = cum[b] - cum[s]
    gain = ((left / n1 - right / n2) ** 2 * (n1 * n2 / (n1 + n2))).sum(axis=1)
    i = int(np.argmax(gain))
    return float(gain[i]), int(s[i])


def _change_points(features: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """Binary segmentation: split where the feature means change most, while it beats penalty."""
    n = features.shape[0]
    cum = np.zeros((n + 1, features.shape[1]))
    np.cumsum(features, axis=0, out=cum[1:])
    out, todo = [], [(0, n)]
    while todo:
        a, b = todo.pop()
        if b - a < 2 * min_size:
            continue
        gain, s = _best_split(cum, a, b, min_size)
        if s > 0 and gain > penalty:
            out.append(s)
            todo += [(a, s), (s, b)]
    return sorted(out)


def _byte_features(a: np.ndarray) -> np.ndarray:
    x = a.astype(np.float32)
    d1 = np.abs(np.diff(x, prepend=x[:1]))
    d3 = np.abs(x - np.concatenate((x[:3], x[:-3])))
    return np.stack([x / 48, np.log1p(d1), np.log1p(d3)], axis=1)


def _refine(a: np.ndarray, lo: int, guess: int, hi: int) -> int:
    """The byte in [lo, hi) where a two-piece fit of byte features around `guess` changes best."""
    lo, hi = max(lo, guess - 2 * _BLOCK), min(hi, guess + 2 * _BLOCK)
    if hi - lo < 8:
        return guess
    f = _byte_features(a[lo:hi])
    cum = np.zeros((f.shape[0] + 1, f.shape[1]))
    np.cumsum(f, axis=0, out=cum[1:])
    gain, s = _best_split(cum, 0, f.shape[0], 4)
    return lo + s if s > 0 else guess


def _zero_runs(a: np.ndarray) -> list[tuple[int, int]]:
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
    cuts = [start]
    for zs, ze in _zero_runs(arr[start:end]):
        cuts += [start + zs, start + ze]
    cuts.append(end)
    bounds = sorted(set(cuts))
    edges = [start]
    for lo, hi in zip(bounds, bounds[1:]):
        if lo != start:
            edges.append(lo)
        a = arr[lo:hi]
        if a.size >= 2 * _MIN_PIECE_BLOCKS * _BLOCK and not (a[0] == 0 and np.all(a == 0)):
            feats = _block_features(a)
            for b in _change_points(feats, _PENALTY, _MIN_PIECE_BLOCKS):
                edges.append(lo + _refine(a, 0, b * _BLOCK, a.size))
    edges = sorted(set(e for e in edges if start <= e < end)) + [end]
    pieces = []
    for lo, hi in zip(edges, edges[1:]):
        if hi <= lo:
            continue
        modality, fmt, conf, reason = classify_piece(arr[lo:hi])
        pieces.append(Piece(lo, hi, modality, fmt, conf, reason))
    return _merge_pieces(arr, pieces)


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
            if {a.format, b.format} == {"pcm", "pixels"} and a.reason.startswith("smooth") and b.reason.startswith("smooth"):
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
