"""Automatic modality detection: split any byte stream into typed segments.

    >>> ModalityDetector().detect_bytes(b"hello " * 4 + bmp_bytes)
    [Segment(start=0, end=24, modality=<Modality.TEXT: 'text'>, format='utf-8', ...),
     Segment(start=24, end=3150, modality=<Modality.IMAGE: 'image'>, format='bmp', ...)]

Cheap exact rules decide first, statistics only where they cannot:
1. signatures at any offset, each header read for the size it declares and its structure walked
   as far as it holds (`formats`, one module per family); a damaged magic is found through the header's other anchors.
   Binary containers (compiled Python, gettext catalogues, ar and tar archives, fonts, NumPy
   arrays, pickles, typelibs, ELF, ZIP, SQLite, ...) are binary by their structure, whatever
   statistics or strings their parts show;
2. a size field that runs past the data, or over a sound header or a run of text, is cut there;
   a signature whose bytes read as text is a word in that text, not an embedded file;
3. text wins: between the files found, bytes that decode as text are text segments: UTF-8
   (`_content`), UTF-16 and legacy encodings that read as language (`_encodings`, with
   charset-normalizer), each named by format (json, html, xml, svg, csv, source code) and
   reported with its encoding;
4. only the rest is cut where its byte statistics change and each piece is named by them (PCM
   audio, RGB or grey pixels, compressed or random data, zeros, unknown binary);
5. libmagic, when installed, names what no rule here knows.

The segments cover the input exactly, in order, and every one says which rule or statistic
decided it (`reason`). Nothing here imports torch, and nothing raises on any bytes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from omnibyte.detector._content import (
    Piece,
    describe_text,
    describe_texts,
    segment_statistics,
    segment_statistics_many,
    text_format,
    text_mask,
    text_runs,
    trim_text,
)
from omnibyte.detector._encodings import (
    LEGACY_MIN,
    legacy_runs,
    legacy_text,
    never_text,
    plain_text,
    signal_like,
    unsignalled,
    utf16_text,
)
from omnibyte.detector._encodings import controls as _controls
from omnibyte.detector.formats import Found, cut_found, find_formats
from omnibyte.errors import read_file
from omnibyte.modality import Modality

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
    encoding: str = ""  # text only: the character encoding its bytes are in (utf-8, utf-16-le, big5, ...)

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        """The CLI's JSON shape: start, end, modality, format, confidence, and a text's encoding."""
        d = asdict(self)
        d["modality"] = self.modality.value
        del d["reason"]
        if not self.encoding:
            del d["encoding"]
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
            return [Segment(0, len(data), Modality.BINARY, "unknown", 0.0,
                            f"detector error: {type(exc).__name__}: {exc}")]

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
            encoding = f"  {s['encoding']}" if s.get("encoding", "utf-8") != "utf-8" else ""  # type: ignore[union-attr]
            lines.append(f"  {s['start']:>10} {s['end']:>10}  {s['modality']:<7} {s['format']:<13} "
                         f"{s['confidence']:.2f}{encoding}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the pipeline


def _detect(data: bytes, use_libmagic: bool) -> list[Segment]:
    arr = np.frombuffer(data, dtype=np.uint8)
    n = len(data)
    found = [_check_tail(data, arr, f) for f in find_formats(data) if not _is_text(data, arr, f)]
    gaps, pos = [], 0
    for f in found:
        if f.start > pos:
            gaps.append((pos, f.start))
        pos = f.end
    if pos < n:
        gaps.append((pos, n))
    described = iter(_describe_gaps(data, arr, gaps))
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
        if not _signature(segments[0]) and segments[0].modality is not Modality.TEXT:
            segments = _libmagic_file(data, segments)
    return segments


# formats whose payload may well be text (a PDF's objects, a stored member of a ZIP, a catalogue's
# messages, a compiled module's docstrings)
_MAY_HOLD_TEXT = {"pdf", "zip", "elf", "sqlite", "mp4", "tiff", "pyc", "gettext-catalogue", "ar", "tar", "font",
                  "woff", "npy", "pickle", "typelib"}


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


# formats whose headers are text by design (and a PDF's body too): their signature in text is
# what it says, and their parsers ask for more (frame markers, a declared size, %%EOF)
_TEXT_FORMATS = {"pdf", "y4m", "ppm"}
_TEXT_HEAD = 4096  # bytes of a found file looked at to tell whether it is text after all


def _is_text(data: bytes, arr: np.ndarray, f: Found) -> bool:
    """Text wins: a signature whose file reads as text (an 'ftyp' or 'RIFF' written in a help
    file, a size field made of letters) is a word in that text, not an embedded file."""
    if f.format in _TEXT_FORMATS:
        return False
    end = min(f.end, f.start + _TEXT_HEAD)
    if end - f.start < 16:
        return False
    if never_text(data[f.start:end]):
        return False  # a control byte no text holds: a binary header, as the signature says
    head = arr[f.start:end]
    if text_mask(head).all():
        return describe_text(data, arr, f.start, end, True) is not None
    return legacy_text(data[f.start:end]) is not None


def _describe_gaps(data: bytes, arr: np.ndarray, gaps: list[tuple[int, int]]) -> list[list[Segment | tuple[int, int]]]:
    """For each gap (bytes no signature claimed): segments for its text, and (start, end) for
    each stretch between them, left to statistics. Text in UTF-16 or a legacy encoding is found
    first; UTF-8 runs in what remains."""
    encoded = [_encoded_text(data, arr, start, end) for start, end in gaps]
    rest = []  # (gap, start, end) of the stretches between encoded texts
    for g, (start, end) in enumerate(gaps):
        pos = start
        for seg in encoded[g]:
            if seg.start > pos:
                rest.append((g, pos, seg.start))
            pos = seg.end
        if pos < end:
            rest.append((g, pos, end))
    described = _describe_utf8(arr, [(lo, hi) for _, lo, hi in rest])
    out: list[list[Segment | tuple[int, int]]] = [[] for _ in gaps]
    for (g, _, _), items in zip(rest, described):
        out[g] += items
    for g, segs in enumerate(encoded):
        if segs:
            out[g] = sorted(out[g] + segs, key=lambda x: x.start if isinstance(x, Segment) else x[0])  # type: ignore[arg-type]
    return out


def _encoded_text(data: bytes, arr: np.ndarray, start: int, end: int) -> list[Segment]:
    """Text segments in UTF-8 or UTF-16 (the whole gap), or in a legacy encoding (runs free of
    controls)."""
    if end - start < 16:
        return []
    # (in a short gap, a quarter of it: a control byte inside a short text leaves two runs to ask about)
    runs = legacy_runs(arr, start, end, min(LEGACY_MIN, end - start, max(64, (end - start) // 4)))
    if runs == [(start, end)] and plain_text(arr[start:end]) and text_mask(arr[start:end]).all():
        return [Segment(start, end, Modality.TEXT, "utf-8", 0.9, "all printable or valid UTF-8, no signal", "utf-8")]
    verdict = utf16_text(data[start:end])
    if verdict is not None:
        encoding, confidence, reason = verdict
        return [Segment(start, end, Modality.TEXT, encoding, confidence, reason, encoding)]
    out = []
    min_len = min(LEGACY_MIN, end - start, max(64, (end - start) // 4))
    stretches = [t for lo, hi in runs if (arr[lo:hi] >= 0x80).any() for t in unsignalled(arr, lo, hi, min_len)]
    for lo, hi in stretches:  # (plain ASCII is the UTF-8 rule's, a signal the statistics')
        if not plain_text(arr[lo:hi]):
            continue
        other = np.flatnonzero(~text_mask(arr[lo:hi]))
        if np.count_nonzero((other >= 64) & (other < hi - lo - 64)) < 2:
            continue  # valid UTF-8 but at its edges (where a signal ends or starts): the UTF-8 rule's
        if 2 * other.size < np.count_nonzero(arr[lo:hi] >= 0x80):
            continue  # most bytes above ASCII are UTF-8 characters: UTF-8 with damage, the UTF-8 rule's
        verdict = legacy_text(data[lo:hi], screened=True)
        if verdict is not None:
            encoding, confidence, reason = verdict
            lo, hi = _trim_signal(arr, lo, hi)
            out.append(Segment(lo, hi, Modality.TEXT, encoding, confidence, reason, encoding))
    return out


def _trim_signal(arr: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """A text run without a signal's last bytes before it or first bytes after it: what
    trim_text would cut off, where those bytes do move like a signal."""
    start, end = trim_text(arr, lo, hi)
    start = start if start - lo >= 64 and signal_like(arr[lo:start].tobytes()) else lo
    end = end if hi - end >= 64 and signal_like(arr[end:hi].tobytes()) else hi
    return start, end


def _describe_utf8(arr: np.ndarray, gaps: list[tuple[int, int]]) -> list[list[Segment | tuple[int, int]]]:
    """For each gap: segments for the UTF-8 text runs in it, and (start, end) for each stretch
    between them, left to statistics. All runs of all gaps are judged at once."""
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
        out[g].append(Segment(rs, re_, Modality.TEXT, "utf-8", confidence, reason, "utf-8"))
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
            if prev.modality is Modality.TEXT and s.modality is Modality.TEXT and prev.encoding == s.encoding:
                out[-1] = _join(prev, s, prev.format, min(prev.confidence, s.confidence), prev.reason)
                continue
            if s.size < _MIN_SEGMENT and not _signature(s):
                out[-1] = _join(prev, s, prev.format, prev.confidence, prev.reason)
                continue
            # (a label of a few bytes before a file's header is its own text segment)
            if (prev.size < _MIN_SEGMENT and not _signature(prev)
                    and not (prev.modality is Modality.TEXT and _signature(s))):
                out[-1] = _join(prev, s, s.format, s.confidence, s.reason, s.modality)
                continue
            if (prev.modality, prev.format) == (s.modality, s.format) and not _signature(s) and not _signature(prev):
                conf = (prev.confidence * prev.size + s.confidence * s.size) / (prev.size + s.size)
                out[-1] = _join(prev, s, s.format, round(conf, 3), prev.reason)
                continue
        out.append(s)
    out = _absorb_short_text(out)
    out = _join_text_across(data, out)
    return [_name_text(data, s) if s.modality is Modality.TEXT else s for s in out]


_SHORT_TEXT = 128


def _join_text_across(data: bytes, segments: list[Segment]) -> list[Segment]:
    """Text wins: a short piece between two text segments that holds at most a stray control
    byte or two (accented letters of a legacy encoding that UTF-8 refused, a bell in a message)
    is part of that text."""
    out: list[Segment] = []
    i = 0
    while i < len(segments):
        s = segments[i]
        if (out and i + 1 < len(segments) and out[-1].modality is Modality.TEXT
                and segments[i + 1].modality is Modality.TEXT and s.modality is not Modality.TEXT and not _signature(s)
                and s.size < _SHORT_TEXT and _controls(data[s.start:s.end]) <= max(2, s.size // 16)):
            nxt, prev = segments[i + 1], out.pop()
            out.append(Segment(prev.start, nxt.end, Modality.TEXT, prev.format, min(prev.confidence, nxt.confidence),
                               prev.reason, prev.encoding or nxt.encoding))
            i += 2
            continue
        out.append(s)
        i += 1
    return out


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


def _join(a: Segment, b: Segment, fmt: str, confidence: float, reason: str,
          modality: Modality | None = None) -> Segment:
    modality = modality or a.modality
    encoding = (a.encoding or b.encoding or "utf-8") if modality is Modality.TEXT else ""
    return Segment(a.start, b.end, modality, fmt, confidence, reason, encoding)


def _name_text(data: bytes, s: Segment) -> Segment:
    encoding = s.encoding or "utf-8"
    raw = data[s.start:s.end]
    fmt = text_format(raw if encoding == "utf-8" else raw.decode(encoding, "replace").encode())
    if fmt == "utf-8":  # plain text is named by its encoding
        fmt = encoding
    return dataclasses.replace(s, format=fmt, encoding=encoding)


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


def _libmagic_file(data: bytes, segments: list[Segment]) -> list[Segment]:
    """A binary format at the very start that no rule here knows but libmagic does (a GNU dbm
    database, a terminfo entry): the file it names runs to the next file a signature found,
    whatever statistics and strings its parts show."""
    tools = _libmagic()
    if tools is None:
        return segments
    try:
        head = data[:1 << 16]
        mime = tools[0].from_buffer(head)
        if not mime or mime in _VAGUE or mime.startswith(("text/", "image/", "audio/", "video/")):
            return segments
        description = tools[1].from_buffer(head)
    except Exception:
        return segments
    if description == "data":
        return segments
    # (strings inside it are its own; a long text is not)
    k = next((i for i, s in enumerate(segments) if i and (_signature(s) or s.modality is Modality.TEXT
                                                            and s.size >= 1024)), len(segments))
    if k == 1 and segments[0].format in ("pixels", "pcm", "pcm16"):
        return segments  # one signal from end to end outweighs a weak magic (a DOS .COM's first byte)
    fmt = mime.split("/", 1)[1].removeprefix("x-").removeprefix("vnd.")
    whole = Segment(0, segments[k - 1].end, Modality.BINARY, fmt, 0.8, f"libmagic: {description}")
    return [whole] + segments[k:]

