"""Automatic modality detection: split any byte stream into typed segments.

    >>> ModalityDetector().detect_bytes(b"hello " * 4 + bmp_bytes)
    [Segment(start=0, end=24, modality=<Modality.TEXT: 'text'>, format='utf-8', ...),
     Segment(start=24, end=3150, modality=<Modality.IMAGE: 'image'>, format='bmp', ...)]

Cheap exact rules decide first, statistics only where they cannot:
1. signatures at any offset, each header read for the size it declares and its structure walked
   as far as it holds (`formats`, one module per family); a damaged magic is found through the header's other anchors;
2. a size field that runs past the data, or over a sound header or a run of text, is cut there;
3. between the files found, runs of valid UTF-8 that read as text (`_content`);
4. the rest is cut where its byte statistics change and each piece is named by them (PCM audio,
   RGB or grey pixels, compressed or random data, zeros, unknown binary);
5. libmagic, when installed, names what no rule here knows.

The segments cover the input exactly, in order, and every one says which rule or statistic
decided it (`reason`). Nothing here imports torch, and nothing raises on any bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from ..errors import read_file
from ..modality import Modality
from ._content import (Piece, describe_text, describe_texts, segment_statistics, segment_statistics_many, text_format,
                       text_mask, text_runs, trim_text)
from .formats import Found, cut_found, find_formats

__all__ = ["Segment", "ModalityDetector", "detect_files_json", "format_detections"]

_MIN_SEGMENT = 16  # shorter leftovers (padding, a stray byte) join the segment before them
_TEXT_CUT = 32  # a text run this long inside a size-declared tail ends that file there


@dataclass(frozen=True)
class Segment:
    """One typed part of a byte stream: bytes [start, end) are `format`, a kind of `modality`."""

    start: int
    end: int  # exclusive
    modality: Modality
    format: str
    confidence: float  # in [0, 1]
    reason: str  # the rule or statistic that decided

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        """The CLI's JSON shape: start, end, modality, format, confidence."""
        d = asdict(self)
        d["modality"] = self.modality.value
        del d["reason"]
        return d


class ModalityDetector:
    """Splits bytes into segments. Stateless and cheap to build; one can serve many inputs.

    use_libmagic: ask libmagic (python-magic) to name binary segments no rule here knows.
    """

    def __init__(self, use_libmagic: bool = True):
        self.use_libmagic = use_libmagic

    def detect_bytes(self, data: bytes | bytearray | memoryview) -> list[Segment]:
        data = bytes(data)
        if not data:
            return []
        try:
            return _detect(data, self.use_libmagic)
        except Exception as exc:  # never raise on any bytes: say what happened instead
            return [Segment(0, len(data), Modality.BINARY, "unknown", 0.0, f"detector error: {type(exc).__name__}: {exc}")]

    def detect_path(self, path: str | PathLike[str]) -> list[Segment]:
        return self.detect_bytes(read_file(Path(path)))


def detect_files_json(paths: Iterable[str | PathLike[str]], detector: ModalityDetector | None = None
                      ) -> list[dict[str, object]]:
    """`[{"path", "segments": [{"start", "end", "modality", "format", "confidence"}]}]` for the
    CLI's --json; every file is read first, so a bad path fails before any work."""
    detector = detector or ModalityDetector()
    contents = [(str(p), read_file(Path(p))) for p in paths]
    return [{"path": p, "segments": [s.to_dict() for s in detector.detect_bytes(d)]} for p, d in contents]


def format_detections(results: list[dict[str, object]]) -> str:
    """detect_files_json's result as a readable table, one block per file."""
    lines = []
    for result in results:
        segments = result["segments"]
        lines.append(f"{result['path']}: {len(segments)} segment{'s' * (len(segments) != 1)}")  # type: ignore[arg-type]
        for s in segments:  # type: ignore[union-attr]
            lines.append(f"  {s['start']:>10} {s['end']:>10}  {s['modality']:<7} {s['format']:<13} {s['confidence']:.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the pipeline


def _detect(data: bytes, use_libmagic: bool) -> list[Segment]:
    arr = np.frombuffer(data, dtype=np.uint8)
    n = len(data)
    found = [_check_tail(data, arr, f) for f in find_formats(data)]
    gaps, pos = [], 0
    for f in found:
        if f.start > pos:
            gaps.append((pos, f.start))
        pos = f.end
    if pos < n:
        gaps.append((pos, n))
    described = iter(_describe_gaps(arr, gaps))
    parts: list[Segment | tuple[int, int]] = []  # segments, and (start, end) left to statistics
    pos = 0
    for f in found:
        if f.start > pos:
            parts += next(described)
        parts.append(Segment(f.start, f.end, f.modality, f.format, float(f.confidence), f.reason))
        pos = f.end
    if pos < n:
        parts += next(described)
    # the statistics of every gap at once: numpy over all of them rather than a call per gap
    pieces = iter(segment_statistics_many(arr, [p for p in parts if isinstance(p, tuple)]))
    segments = [s for p in parts for s in ([_segment(q) for q in next(pieces)] if isinstance(p, tuple) else [p])]
    segments = _tidy(data, segments)
    if use_libmagic:
        # compressed-looking bytes right after other statistics are the same stream going on;
        # after a file, a text or at the start they may be a format libmagic knows
        segments = [_ask_libmagic(data, s) if s.format != "high-entropy" or i == 0 or _signature(segments[i - 1])
                    or segments[i - 1].modality is Modality.TEXT else s for i, s in enumerate(segments)]
    return segments


# formats whose payload may well be text (a PDF's objects, a stored member of a ZIP)
_MAY_HOLD_TEXT = {"pdf", "zip", "elf", "sqlite", "mp4", "tiff"}


def _check_tail(data: bytes, arr: np.ndarray, f: Found) -> Found:
    """Cut a file whose size field claims bytes that turn out to be something else."""
    if f.solid >= f.end or f.format in _MAY_HOLD_TEXT:
        return f
    for start, end in text_runs(arr[f.solid:f.end], _TEXT_CUT):
        verdict = describe_text(data, arr, f.solid + start, f.end, False) if f.solid + end == f.end else None
        if verdict is not None and verdict[0] >= 0.9:
            return cut_found(f, f.solid + start, "size field runs over text")
    if f.reason.endswith("extent from the bytes that follow"):
        pieces = segment_statistics(arr, f.solid, f.end)
        return cut_found(f, pieces[0].end, "payload ends where its statistics change") if len(pieces) > 1 else f
    return f


def _describe_gaps(arr: np.ndarray, gaps: list[tuple[int, int]]) -> list[list[Segment | tuple[int, int]]]:
    """For each gap (bytes no signature claimed): segments for the text runs in it, and
    (start, end) for each stretch between them, left to statistics. All runs of all gaps are
    judged at once."""
    runs = []  # (gap, start, end) of each printable run
    for g, (start, end) in enumerate(gaps):
        # a short gap that is all text (a word between two files, a tiny input) is text too
        whole = [(0, end - start)] if end - start < 16 and text_mask(arr[start:end]).all() else []
        for rs, re_ in text_runs(arr[start:end]) or whole:
            runs.append((g, *trim_text(arr, start + rs, start + re_)))
    verdicts = describe_texts(arr, [(rs, re_, re_ - rs >= gaps[g][1] - gaps[g][0] - 2) for g, rs, re_ in runs])
    out: list[list[Segment | tuple[int, int]]] = [[] for _ in gaps]
    pos = [start for start, _ in gaps]
    for (g, rs, re_), verdict in zip(runs, verdicts):
        if verdict is None:
            continue
        if rs > pos[g]:
            out[g].append((pos[g], rs))
        confidence, reason = verdict
        out[g].append(Segment(rs, re_, Modality.TEXT, "utf-8", confidence, reason))
        pos[g] = re_
    for g, (_, end) in enumerate(gaps):
        if pos[g] < end:
            out[g].append((pos[g], end))
    return out


def _segment(p: Piece) -> Segment:
    return Segment(p.start, p.end, p.modality, p.format, float(p.confidence), p.reason)


def _tidy(data: bytes, segments: list[Segment]) -> list[Segment]:
    """Join what belongs together: neighbouring text, same-named statistical pieces, and
    leftovers too short to be anything (padding after a file, a stray byte)."""
    out: list[Segment] = []
    for s in segments:
        if out:
            prev = out[-1]
            if prev.modality is Modality.TEXT and s.modality is Modality.TEXT:
                out[-1] = _join(prev, s, prev.format, min(prev.confidence, s.confidence), prev.reason)
                continue
            if s.size < _MIN_SEGMENT and not _signature(s):
                out[-1] = _join(prev, s, prev.format, prev.confidence, prev.reason)
                continue
            if prev.size < _MIN_SEGMENT and not _signature(prev):
                out[-1] = _join(prev, s, s.format, s.confidence, s.reason, s.modality)
                continue
            if (prev.modality, prev.format) == (s.modality, s.format) and not _signature(s) and not _signature(prev):
                conf = (prev.confidence * prev.size + s.confidence * s.size) / (prev.size + s.size)
                out[-1] = _join(prev, s, s.format, round(conf, 3), prev.reason)
                continue
        out.append(s)
    out = _absorb_short_text(out)
    return [_name_text(data, s) if s.modality is Modality.TEXT else s for s in out]


_SHORT_TEXT = 128


def _absorb_short_text(segments: list[Segment]) -> list[Segment]:
    """A short printable run between two statistical pieces of the same kind is part of them
    (half a cycle of loud audio, a row of dark pixels), not a message."""
    out: list[Segment] = []
    i = 0
    while i < len(segments):
        s = segments[i]
        between = (out and i + 1 < len(segments) and s.modality is Modality.TEXT and not _signature(out[-1])
                   and out[-1].modality is not Modality.TEXT and not _signature(segments[i + 1])
                   and segments[i + 1].modality is not Modality.TEXT)
        if between and (out[-1].modality, out[-1].format) == (segments[i + 1].modality, segments[i + 1].format) \
                and s.size < _SHORT_TEXT:
            nxt = segments[i + 1]
            prev = out.pop()
            conf = (prev.confidence * prev.size + nxt.confidence * nxt.size) / (prev.size + nxt.size)
            out.append(Segment(prev.start, nxt.end, prev.modality, prev.format, round(conf, 3), prev.reason))
            i += 2
            continue
        if between and s.size < _SHORT_TEXT // 2:
            # at a change between two other kinds: the tail of one of them
            prev = out[-1]
            out[-1] = Segment(prev.start, s.end, prev.modality, prev.format, prev.confidence, prev.reason)
            i += 1
            continue
        out.append(s)
        i += 1
    return out


def _signature(s: Segment) -> bool:
    return s.modality is not Modality.TEXT and s.format not in ("pcm", "pixels", "zeros", "high-entropy", "unknown")


def _join(a: Segment, b: Segment, fmt: str, confidence: float, reason: str, modality: Modality | None = None) -> Segment:
    return Segment(a.start, b.end, modality or a.modality, fmt, confidence, reason)


def _name_text(data: bytes, s: Segment) -> Segment:
    fmt = text_format(data[s.start:s.end])
    return s if fmt == s.format else Segment(s.start, s.end, s.modality, fmt, s.confidence, s.reason)


# libmagic: (mime prefix or exact mime) -> (modality, format)
_MIME_MODALITY = {"image/": Modality.IMAGE, "audio/": Modality.AUDIO, "video/": Modality.VIDEO}
_VAGUE = {"application/octet-stream", "text/plain", "application/x-empty", "inode/x-empty"}


@functools.lru_cache(maxsize=1)
def _libmagic():
    try:
        import magic

        return magic.Magic(mime=True), magic.Magic()
    except Exception:  # not installed, or the system library is missing: rules only
        return None


def _ask_libmagic(data: bytes, s: Segment) -> Segment:
    """Let libmagic name a binary segment the rules could only describe by its statistics (it
    knows RAR, CAB and many rarer formats), or a zip (it knows which: docx, jar, epub, ...)."""
    if s.modality is not Modality.BINARY or s.format not in ("unknown", "high-entropy", "zip") or s.size < 64:
        return s
    tools = _libmagic()
    if tools is None:
        return s
    # the mime type first: most answers stop there, and only a useful one needs the description
    try:
        chunk = data[s.start:min(s.end, s.start + 4096)]
        mime = tools[0].from_buffer(chunk)
        if not mime or mime in _VAGUE or mime == "application/zip" or mime.startswith("text/"):
            return s  # (text the UTF-8 rule refused is not text to us)
        description = tools[1].from_buffer(chunk)
    except Exception:
        return s
    if description == "data":  # what libmagic says of bytes it does not know either
        return s
    modality = next((m for prefix, m in _MIME_MODALITY.items() if mime.startswith(prefix)), Modality.BINARY)
    fmt = mime.split("/", 1)[1].removeprefix("x-").removeprefix("vnd.")
    return Segment(s.start, s.end, modality, fmt, round(max(s.confidence, 0.6), 3), f"libmagic: {description}")
