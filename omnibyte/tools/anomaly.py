"""Anomaly detection: the regions of a file the model finds far more surprising than the rest.

    regions = find_anomalies(model, data)  # [AnomalyRegion(start, end, score), ...]

Every byte gets its surprisal under the model (`score.py`; DOC_START and, when the file is
recognisably one modality, its tag, as compression does). A rolling median over `window` bytes
turns that into a sustained level: a median, unlike a mean, ignores the few sharp spikes that
real content has (an edge in an image, the first letter of a name) and keeps the edges of a
damaged run where they are. A byte is flagged where that level stands far above the file's own
baseline (its median, plus `z` times the spread measured as a scaled median absolute deviation,
kept between `min_excess_bits` and `max_excess_bits`) and also above `floor_bits` (7.5 bits, near
the 8 a uniform guess costs: content like the file's own rarely costs that much). The
first `warmup` bytes after the context starts are never flagged (nothing predicts them). Flagged
runs closer than `merge_gap` are merged, and runs shorter than `min_length` dropped, as are
those whose score (below) is under `min_score_bits`, and those whose level never rises
`outlier_margin_bits` above the `outlier_quantile` (90th percentile) of the levels in the rest
of the file: a file whose surprising parts are widespread (a photographic texture among flat
drawings, a noisy sound) has them everywhere, and a region must stand out even from those.

Spikes follow a second rule. Content the model can predict, spliced in where it does not
belong (a slice of a flat picture inside a text), costs little byte by byte: the rolling median
never sees it. What the model cannot predict is the seam: the first byte of the foreign content
and the first byte after it. A byte is a spike when it costs `spike_bits` (17: a chance under 1
in 130,000) or more, or when it costs `spike_floor_bits` (12) or more and stands
`spike_margin_bits` (3) above every byte of the file farther than `spike_merge_gap` from it: the
one place this file is far more surprised than anywhere else, which is what a seam in
well-predicted content looks like, even under 17 bits. Spikes within `spike_merge_gap` bytes of each
other are one region (so an insertion's two seams make one region that spans it), but only in a
file where 17-bit bytes are rare: a file with more than `spikes_per_kb` of them per 1,000 bytes
(at least 2) is noisy throughout, and its spikes say nothing. (A byte that stands out is one
place by construction, so it does not count towards that budget.) The same budget holds for the
bytes costing `spike_floor_bits` or more farther than `spike_merge_gap` from a spike: a file
from outside what the model knows (a real document full of rare words and names) pays 12 bits
here and there, and a 17-bit byte is the tail of that, where in a file the model knows well
nothing else comes near a seam. Every spike must also cost
`spike_excess_bits` (13) more than the file's baseline: in bytes the model cannot predict at all
(random or encrypted data, about 9.5 bits a byte) a 17-bit byte is only the tail of the noise.

Headers follow a third rule. A native file's header (BMP 54 bytes, WAV 44, the Y4M header
line) is all but fixed, and the trained model predicts each of its bytes to within about a bit,
so one byte there costing `header_spike_bits` or more is damage, even a single flipped bit
that the rolling median would smooth away. Each such byte (nearby ones merged) is a region.

Foreign content follows a fourth rule, when the bytes were also scored alone (`score_alone`:
each byte as part of a short document of its own, with none of the file before it). In a file,
context helps: a pixel is cheaper beside the rows above it, a word after the sentence before
it. Bytes that do not belong (a sentence written into a picture or a sound) are the other way
round: the file around them makes them dearer than they are on their own, since the model
expects more of the file. A byte is flagged where, over `context_window` bytes, its surprisal
in place exceeds its surprisal alone by `context_excess_bits` per byte on average (warm-up and
header bytes count as no difference), and only before the first region the other rules found:
after damage, the model reads the rest in a damaged context, and its echo would look the same.
Random bytes cost as much alone as in place, so this rule is blind to them; the first rule sees
those.

A region's score is its mean surprisal minus the file's baseline, in bits per byte: how much
more each of its bytes costs than a typical byte of the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from omnibyte.codecs.audio import WAV_HEADER_BYTES
from omnibyte.codecs.image import BMP_HEADER
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.model.transformer import BytePredictor

__all__ = ["AnomalySettings", "AnomalyRegion", "AnomalyReport", "native_header_size", "find_regions", "analyse_bytes",
           "find_anomalies"]

# a median absolute deviation times this estimates a standard deviation for normal data
_MAD_TO_SD = 1.4826
_Y4M_HEADER_LIMIT = 256  # a native Y4M header line is about 40 bytes
# an insertion has two seams, so a file may always hold this many spikes
_MIN_SPIKE_BUDGET = 2


@dataclass(frozen=True)
class AnomalySettings:
    # bytes in the rolling median; a run must cover about half of it to show
    window: int = 6
    # robust standard deviations above the baseline...
    z: float = 6.0
    # ...but at least min_excess_bits and at most max_excess_bits above it: a file of one flat
    # colour has no spread at all, and a file of two very different halves has a huge one
    min_excess_bits: float = 2.0
    max_excess_bits: float = 8.0
    # the first bytes after the context starts are predicted from (almost) nothing, so they are
    # surprising in any file; they are never flagged
    warmup: int = 8
    # and at least this many bits per byte (8 is a uniform guess over the 256 byte values): a
    # byte costing less is not worth a region, whatever the file's baseline
    floor_bits: float = 7.5
    # flagged runs at most this many bytes apart are one region: damage disturbs the model for
    # a while after it ends (the next image row is predicted from the damaged one), and those
    # echoes belong to the damage's own region
    merge_gap: int = 64
    min_length: int = 16
    # a run region must cost at least this much more per byte than the file's baseline...
    min_score_bits: float = 2.0
    # ...and peak this far above the outlier_quantile of the levels in the rest of the file
    outlier_quantile: float = 0.9
    outlier_margin_bits: float = 3.0
    # a byte costing this many bits is a spike...
    spike_bits: float = 17.0
    # ...as is one costing spike_floor_bits that stands spike_margin_bits above every byte farther
    # than spike_merge_gap from it...
    spike_floor_bits: float = 12.0
    spike_margin_bits: float = 3.0
    # ...spikes this close are one region...
    spike_merge_gap: int = 160
    # ...and a file with more bytes at spike_bits than this per 1,000 (at least _MIN_SPIKE_BUDGET) gets none,
    # as does a spike with more bytes at spike_floor_bits than that farther than spike_merge_gap from it
    spikes_per_kb: float = 2.0
    # every spike costs at least this much more than the file's baseline: in a file the model cannot
    # predict at all (random or encrypted bytes, baseline near 8 bits) a 17-bit byte is just its tail
    spike_excess_bits: float = 13.0
    # inside a native header, a byte costing this many bits is a region on its own
    header_spike_bits: float = 6.0
    # the context rule: bytes costing this much more in place than alone, on average over
    # context_window bytes, do not belong where they are
    context_window: int = 32
    context_excess_bits: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or self.window < 1:
            raise OmniByteError(f"anomaly window must be a positive integer, got {self.window!r}")
        if not isinstance(self.context_window, int) or isinstance(self.context_window, bool) or self.context_window < 1:
            raise OmniByteError(f"context_window must be a positive integer, got {self.context_window!r}")
        if not isinstance(self.min_length, int) or self.min_length < 1:
            raise OmniByteError(f"minimum region length must be a positive integer, got {self.min_length!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise OmniByteError(f"warm-up must be a non-negative integer, got {self.warmup!r}")
        for name in ("merge_gap", "spike_merge_gap"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise OmniByteError(f"{name} must be a non-negative integer, got {value!r}")
        if self.max_excess_bits < self.min_excess_bits:
            raise OmniByteError("max_excess_bits must be at least min_excess_bits")
        if not isinstance(self.outlier_quantile, (int, float)) or not 0 <= self.outlier_quantile <= 1:
            raise OmniByteError(f"outlier_quantile must be between 0 and 1, got {self.outlier_quantile!r}")
        for name in ("z", "floor_bits", "min_excess_bits", "max_excess_bits", "header_spike_bits", "min_score_bits",
                     "spike_bits", "spikes_per_kb", "outlier_margin_bits", "spike_floor_bits",
                     "spike_margin_bits", "spike_excess_bits", "context_excess_bits"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise OmniByteError(f"{name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class AnomalyRegion:
    """Bytes [start, end) stand out; `score` is their mean surprisal above the file's baseline (bits)."""

    start: int
    end: int  # exclusive
    score: float

    def to_dict(self) -> dict[str, int | float]:
        """The CLI's JSON shape: start, end, score."""
        d = asdict(self)
        d["score"] = round(self.score, 3)
        return d


@dataclass(frozen=True)
class AnomalyReport:
    """Everything a viewer needs: per-byte surprisal (to highlight bytes) and the regions found."""

    surprisal_bits: np.ndarray = field(repr=False)  # (N,)
    level_bits: np.ndarray = field(repr=False)  # (N,) the rolling median the regions are cut from
    baseline_bits: float  # the file's typical byte
    threshold_bits: float  # a level above this is flagged
    regions: list[AnomalyRegion]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def native_header_size(data: bytes, modality: Modality) -> int:
    """How many leading bytes of `data` are the header of its native format (0: none found)."""
    if modality == Modality.IMAGE and data.startswith(b"BM"):
        return min(len(data), len(BMP_HEADER))
    if modality == Modality.AUDIO and data.startswith(b"RIFF"):
        return min(len(data), WAV_HEADER_BYTES)
    if modality == Modality.VIDEO and data.startswith(b"YUV4MPEG2"):
        return data.find(b"\n", 0, _Y4M_HEADER_LIMIT) + 1  # 0 when the line never ends
    return 0


def _merged(runs: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Runs at most `gap` bytes apart joined into one."""
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def find_regions(surprisal_bits: np.ndarray, settings: AnomalySettings = AnomalySettings(),
                 context_starts: Sequence[int] = (0,), header_size: int = 0,
                 alone_bits: np.ndarray | None = None) -> AnomalyReport:
    """The anomalous regions of a per-byte surprisal array (the model-free half of the job).

    `context_starts` are the offsets where the model's context began afresh (every scoring
    window); the `warmup` bytes after each are never flagged. The first `header_size` bytes
    are a native header (`native_header_size`), where single surprising bytes count too.
    `alone_bits`, the same bytes' surprisal scored alone (`score_alone`), turns on the fourth.
    Regions come from four rules (module docstring): sustained runs, rare spikes, damaged header
    bytes, and bytes their context makes dearer; where two overlap, the earlier rule's region stands.
    """
    surprisal = np.asarray(surprisal_bits, dtype=np.float64)
    if surprisal.ndim != 1 or not np.all(np.isfinite(surprisal)):
        raise OmniByteError("surprisal must be a one-dimensional array of finite numbers")
    if surprisal.size == 0:
        return AnomalyReport(surprisal, surprisal.copy(), 0.0, settings.floor_bits, [])
    # the warm-up bytes count as typical ones, so their spikes neither show nor prop up a neighbour
    typical = surprisal.copy()
    in_warmup = np.zeros(surprisal.size, dtype=bool)
    for start in context_starts:
        in_warmup[start:start + settings.warmup] = True
    typical[in_warmup] = np.median(surprisal)
    level = median_filter(typical, size=min(settings.window, surprisal.size), mode="reflect")
    baseline = float(np.median(level))
    spread = _MAD_TO_SD * float(np.median(np.abs(level - baseline)))
    excess = min(max(settings.z * spread, settings.min_excess_bits), settings.max_excess_bits)
    threshold = max(baseline + excess, settings.floor_bits)
    score = lambda start, end: float(surprisal[start:end].mean()) - baseline  # noqa: E731
    spans = [(start, end) for start, end in _merged(_runs(level > threshold), settings.merge_gap)
             if end - start >= settings.min_length and score(start, end) >= settings.min_score_bits
             and _stands_out(level, start, end, settings)]
    header_end = min(max(0, int(header_size)), surprisal.size)
    # spikes: outside the warm-up and the header (whose bytes the header rule judges)
    eligible = ~in_warmup
    eligible[:header_end] = False
    spikes = _spikes(surprisal, eligible, settings) & (surprisal >= baseline + settings.spike_excess_bits)
    # the budget counts the bytes at spike_bits: a byte standing out is one place, however many bits it costs
    if (spikes & (surprisal >= settings.spike_bits)).sum() <= _spike_budget(surprisal.size, settings):
        spans = _without_overlaps(spans, _merged(_runs(spikes), settings.spike_merge_gap))
    if header_end:
        damaged = _merged(_runs(surprisal[:header_end] >= settings.header_spike_bits), settings.window)
        spans = _without_overlaps(spans, damaged)
    if alone_bits is not None:
        alone = np.asarray(alone_bits, dtype=np.float64)
        if alone.shape != surprisal.shape or not np.all(np.isfinite(alone)):
            raise OmniByteError("alone_bits must be finite and one per byte, as surprisal_bits")
        size = min(settings.context_window, surprisal.size)
        dearer = uniform_filter1d(np.where(eligible, surprisal - alone, 0.0), size=size, mode="nearest")
        # after damage the other rules found, the bytes are read in a damaged context and cost more
        # in place than alone for a long way (a tone takes a while to lock on again): that is the
        # damage's echo, not more damage, so this rule looks only before the first region
        first = min((start for start, _ in spans), default=surprisal.size)
        out_of_place = _merged(_runs(dearer[:first] > settings.context_excess_bits), settings.merge_gap)
        spans = _without_overlaps(spans, out_of_place)
    regions = [AnomalyRegion(start, end, score(start, end)) for start, end in spans]
    return AnomalyReport(surprisal, level, baseline, threshold, regions)


def _spike_budget(size: int, settings: AnomalySettings) -> float:
    """How many bytes of spike_bits (or, away from a spike, of spike_floor_bits) a quiet file of `size` may hold."""
    return max(_MIN_SPIKE_BUDGET, settings.spikes_per_kb * size / 1000)


def _count_farther(mask: np.ndarray, gap: int) -> np.ndarray:
    """For each index, how many True entries of mask lie more than `gap` from it."""
    counted = np.concatenate([[0], np.cumsum(mask)])
    index = np.arange(mask.size)
    near = counted[np.minimum(index + gap + 1, mask.size)] - counted[np.maximum(index - gap, 0)]
    return counted[-1] - near


def _spikes(surprisal: np.ndarray, eligible: np.ndarray, settings: AnomalySettings) -> np.ndarray:
    """Which bytes are spikes: eligible, with few bytes of spike_floor_bits farther than
    spike_merge_gap from them (the spike budget), and costing spike_bits, or costing
    spike_floor_bits and spike_margin_bits above every eligible byte that far from them."""
    gap = settings.spike_merge_gap
    values = np.where(eligible, surprisal, -np.inf)
    # the highest eligible byte outside [i - gap, i + gap], from running maxima from either end
    from_left = np.maximum.accumulate(values)
    from_right = np.maximum.accumulate(values[::-1])[::-1]
    index = np.arange(values.size)
    left = np.where(index > gap, from_left[np.maximum(index - gap - 1, 0)], -np.inf)
    right = np.where(index + gap + 1 < values.size, from_right[np.minimum(index + gap + 1, values.size - 1)], -np.inf)
    farther = np.maximum(left, right)
    # standing out needs a file to stand out from: at least half its eligible bytes lie farther away
    eligible_farther = _count_farther(eligible, gap)
    stands_out = ((surprisal >= settings.spike_floor_bits) & (surprisal >= farther + settings.spike_margin_bits)
                  & (eligible_farther >= eligible.sum() - eligible_farther))
    # a spike in a file whose other bytes often cost spike_floor_bits is the tail of that file's
    # surprise, not a seam: the same budget as for 17-bit bytes, counted at the floor, away from it
    dear_farther = _count_farther(eligible & (surprisal >= settings.spike_floor_bits), gap)
    quiet = dear_farther <= _spike_budget(values.size, settings)
    return eligible & quiet & ((surprisal >= settings.spike_bits) | stands_out)


def _stands_out(level: np.ndarray, start: int, end: int, settings: AnomalySettings) -> bool:
    """Whether the region's peak level clears the rest of the file's outlier_quantile by the margin."""
    rest = np.concatenate([level[:start], level[end:]])
    if rest.size == 0:
        return True
    return level[start:end].max() > float(np.quantile(rest, settings.outlier_quantile)) + settings.outlier_margin_bits


def _without_overlaps(kept: list[tuple[int, int]], more: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`kept` and those of `more` that overlap none of them, in order."""
    return sorted(kept + [(s, e) for s, e in more if not any(s < e2 and e > s2 for s2, e2 in kept)])


def analyse_bytes(model: BytePredictor, data: bytes, modality: Modality | None = None,
                  settings: AnomalySettings = AnomalySettings()) -> AnomalyReport:
    """Score `data` with the model and find its anomalous regions.

    `modality` is the tag the bytes are scored after: None guesses it from the bytes, BINARY
    scores with no tag (as compression does).
    """
    from omnibyte.tools.compress import guess_modality, prefix_tokens
    from omnibyte.tools.score import score_alone, score_bytes

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OmniByteError(f"expected bytes to analyse, got {type(data).__name__}")
    data = bytes(data)
    modality = guess_modality(data) if modality is None else Modality(modality)
    prefix = prefix_tokens(modality)
    scores = score_bytes(model, data, prefix=prefix)
    # score_bytes restarts the context every max_seq_len - len(prefix) bytes
    context_starts = range(0, len(data), model.config.max_seq_len - len(prefix))
    return find_regions(scores.surprisal_bits, settings, context_starts, native_header_size(data, modality),
                        score_alone(model, data))


def find_anomalies(model: BytePredictor, data: bytes, modality: Modality | None = None,
                   settings: AnomalySettings = AnomalySettings()) -> list[AnomalyRegion]:
    """The regions of `data` whose surprisal stands far above the file's own baseline."""
    return analyse_bytes(model, data, modality, settings).regions
