"""Evaluation of a checkpoint on the corpus's held-out split (`python -m omnibyte eval`).

1. Compression: bits per byte under the model (each file scored after DOC_START and its
   modality tag) beside gzip -9, xz -9, PNG (images) and FLAC (audio) on the same files.
2. Validity of unconditional samples: a generated BMP must open as a 32x32 image, a WAV must
   be read by libsndfile, text must be UTF-8, a Y4M must parse as eight 16x16 frames.
3. Caption-conditioned samples checked against their caption: the asked colour in a generated
   image, the asked pitch in a generated tone; and caption sensitivity: what held-out captioned
   pictures cost after their caption, after one with the wrong shape or background colour, and
   after none.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from omnibyte.codecs import (
    BMP_BYTES,
    FRAME_COUNT,
    FRAME_SIZE,
    SAMPLE_RATE,
    WAV_BYTES,
    Y4M_BYTES,
    decode_audio,
    decode_image,
)
from omnibyte.codecs.image import BMP_HEADER
from omnibyte.errors import OmniByteError
from omnibyte.generation.generate import GenerationResult, SamplingParams, generate
from omnibyte.modality import Modality
from omnibyte.model.transformer import BytePredictor
from omnibyte.tools.classical import classical_sizes, png_size
from omnibyte.tools.score import score_bytes
from omnibyte.training.corpus import COLOURS, SHAPES, shape_caption
from omnibyte.vocab import MODALITY_TAGS, document_tokens

__all__ = ["compression_table", "real_world_report", "format_real_report", "photo_continuation",
           "continuation_grid", "sample_validity", "caption_checks", "caption_sensitivity", "captioned_shapes",
           "changed_colour", "evaluate", "nearest_colour_share", "dominant_hz"]

_SUFFIX = {Modality.TEXT: "*.txt", Modality.IMAGE: "*.bmp", Modality.AUDIO: "*.wav", Modality.VIDEO: "*.y4m"}
SAMPLE_BYTES = {Modality.TEXT: 256, Modality.IMAGE: BMP_BYTES, Modality.AUDIO: WAV_BYTES, Modality.VIDEO: Y4M_BYTES}


def _spread(files: list[Path], count: int | None) -> list[Path]:
    """`count` files evenly spaced through the sorted list (all of them when count is None or
    larger). The files are numbered source by source, so the first `count` would be mostly the
    first source (90 of the first 100 held-out texts are fortunes); spaced out, every source is in."""
    if count is None or len(files) <= count:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, num=count).round().astype(int)]


def compression_table(model: BytePredictor, val_dir: Path, max_files: int | None = 100) -> dict[str, dict]:
    """Per modality: files, bytes, and bits per byte under the model and each classical coder."""
    table: dict[str, dict] = {}
    for modality in (Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO):
        files = _spread(sorted((val_dir / modality.value).glob(_SUFFIX[modality])), max_files)
        if not files:
            continue
        totals = {"model": 0.0, "gzip -9": 0, "xz -9": 0, "zstd -19": 0}
        if modality is Modality.IMAGE:
            totals["png"] = 0
        if modality is Modality.AUDIO:
            totals["flac"] = 0
        size = 0
        prefix = document_tokens([(modality, b"")])
        for path in files:
            data = path.read_bytes()
            size += len(data)
            totals["model"] += float(score_bytes(model, data, prefix=prefix).surprisal_bits.sum())
            for name, size_bytes in classical_sizes(data, modality).items():
                totals[name] += 8 * size_bytes
        row = {"files": len(files), "bytes": size}
        row.update({name: bits / size for name, bits in totals.items() if name != "zstd -19" or bits})
        classical = {k: v for k, v in row.items() if k not in ("files", "bytes", "model")}
        row["best_classical"] = min(classical, key=classical.get)
        table[modality.value] = row
    return table


# --- validity ---------------------------------------------------------------------------------------

def bmp_is_valid(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.format == "BMP" and im.size == (32, 32)
    except Exception:
        return False


def wav_is_valid(data: bytes) -> bool:
    try:
        samples, rate = sf.read(io.BytesIO(data))
        return rate == SAMPLE_RATE and samples.ndim == 1 and len(samples) > 0
    except Exception:
        return False


def text_is_valid(data: bytes, cut_short: bool) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # a sample stopped at max bytes may end inside a character; that is the cut, not the model
        return cut_short and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"


def y4m_is_valid(data: bytes) -> bool:
    header_end = data.find(b"\n")
    if header_end < 0 or not data.startswith(b"YUV4MPEG2 "):
        return False
    params = dict((p[0], p[1:]) for p in data[10:header_end].decode("ascii", "replace").split() if p)
    if params.get("W") != str(FRAME_SIZE) or params.get("H") != str(FRAME_SIZE):
        return False
    frames, pos = 0, header_end + 1
    while pos < len(data):
        if data[pos:pos + 6] != b"FRAME\n" or len(data) < pos + 6 + FRAME_SIZE * FRAME_SIZE:
            return False
        frames += 1
        pos += 6 + FRAME_SIZE * FRAME_SIZE
    return frames == FRAME_COUNT


def _results(model: BytePredictor, prompt: list[int], count: int, max_bytes: int, seed: int,
             batch: int = 16, sampling: dict | None = None) -> list[GenerationResult]:
    """`count` samples; `sampling`: extra SamplingParams fields (top_p, guidance_scale,
    valid_utf8, valid_media)."""
    out = []
    for first in range(0, count, batch):
        n = min(batch, count - first)
        params = SamplingParams(max_new_bytes=max_bytes, seed=seed + first, num_samples=n, **(sampling or {}))
        out += generate(model, prompt, params)
    return out


def sample_validity(model: BytePredictor, count: int = 32, seed: int = 0,
                    sampling: dict | None = None) -> dict[str, dict]:
    checks = {
        Modality.IMAGE: lambda d, r: bmp_is_valid(d),
        Modality.AUDIO: lambda d, r: wav_is_valid(d),
        Modality.TEXT: lambda d, r: text_is_valid(d, r == "max_new_bytes"),
        Modality.VIDEO: lambda d, r: y4m_is_valid(d),
    }
    result = {}
    for modality, check in checks.items():
        results = _results(model, document_tokens([(modality, b"")]), count, SAMPLE_BYTES[modality], seed,
                           sampling=sampling)
        # what is checked is the part the sample was asked for: the bytes before the first control
        # token. A sample may go on into another part (a text that turns into a caption and then
        # its picture); that part is the model switching modality, not the text being invalid.
        parts = [(r.data[:r.boundaries[0].offset], None) if r.boundaries else (r.data, r.stop_reason)
                 for r in results]
        valid = sum(bool(check(data, reason)) for data, reason in parts)
        went_on = sum(any(b.token in MODALITY_TAGS.values() for b in r.boundaries) for r in results)
        result[modality.value] = {"samples": len(results), "valid": valid, "share": valid / len(results),
                                  "went_on_to_another_part": went_on}
    return result


# --- caption conditioning ---------------------------------------------------------------------------

def nearest_colour_share(pixels: np.ndarray, colour: str) -> float:
    """Share of pixels whose nearest named colour (of the corpus palette) is `colour`."""
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=np.float64)  # (C, 3)
    distances = ((pixels.reshape(-1, 1, 3).astype(np.float64) - palette[None]) ** 2).sum(-1)  # (P, C)
    return float(np.mean(distances.argmin(1) == names.index(colour)))


def dominant_hz(samples_uint8: np.ndarray) -> float:
    wave = samples_uint8.astype(np.float64) - 128
    if len(wave) < 64 or not wave.any():
        return 0.0
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)[spectrum.argmax()])


def caption_checks(model: BytePredictor, per_caption: int = 4, seed: int = 0,
                   sampling: dict | None = None) -> dict[str, Any]:
    """Images asked for each colour, tones asked for a few pitches: how often they comply."""
    names = list(COLOURS)
    hits, rows = 0, []
    for index, colour in enumerate(names):
        background = names[(index + 3) % len(names)]
        caption = shape_caption("circle", colour, background)
        prompt = document_tokens([(Modality.TEXT, caption.encode()), (Modality.IMAGE, b"")])
        for sample in _results(model, prompt, per_caption, BMP_BYTES, seed + index, sampling=sampling):
            # at least 5% of the picture in the asked colour: a shape of radius 7 covers 15%
            share = nearest_colour_share(decode_image(sample.data).pixels, colour)
            hits += share >= 0.05
            rows.append({"caption": caption, "colour_share": round(share, 3)})
    tone_hits, tone_rows = 0, []
    for index, hz in enumerate((262, 440, 660, 880)):
        prompt = document_tokens([(Modality.TEXT, f"a {hz} Hz sine tone".encode()), (Modality.AUDIO, b"")])
        for sample in _results(model, prompt, per_caption, WAV_BYTES, seed + 100 + index, sampling=sampling):
            found = dominant_hz(decode_audio(sample.data).samples)
            tone_hits += abs(found - hz) <= 0.05 * hz
            tone_rows.append({"hz": hz, "found_hz": round(found, 1)})
    return {"image_colour": {"samples": len(rows), "hits": int(hits), "share": hits / len(rows), "rows": rows},
            "tone_pitch": {"samples": len(tone_rows), "hits": int(tone_hits), "share": tone_hits / len(tone_rows),
                           "rows": tone_rows}}


def changed_colour(colour: str, asks: dict) -> str:
    """The next palette colour after `colour` that is neither the shape's nor the background's
    in `asks`: a caption with it names a picture that is not there."""
    names = list(COLOURS)
    return next(c for c in names[names.index(colour) + 1:] + names if c not in (asks["colour"], asks["background"]))


def captioned_shapes(val_dir: Path, count: int, sources: tuple[str, ...] = ("shapes",),
                     shapes: tuple[str, ...] = SHAPES) -> list[dict]:
    """The first `count` held-out captioned shape pictures of `sources` drawing one of `shapes`:
    their rows of the split's captions.jsonl (file, source, asks); none when it has no such file."""
    path = val_dir / "captions.jsonl"
    if not path.is_file():
        return []
    rows = [row for row in map(json.loads, path.read_text().splitlines())
            if row.get("source") in sources and {"colour", "background", "shape"} <= set(row.get("asks", {}))
            and row["asks"]["shape"] in shapes]
    return rows[:count]


def caption_sensitivity(model: BytePredictor, val_dir: Path, max_files: int = 24) -> dict[str, Any] | None:
    """Does the model read the caption? Held-out captioned shape pictures scored after their own
    caption, after the same caption with the shape's colour changed, and after none: total bits.
    A model that uses the colour word pays more for the picture under the wrong caption. Sampling
    checks (caption_checks) say how often it complies; this says, with far less noise, whether
    the caption moves its predictions at all. None when the split has no captioned shapes."""
    rows = captioned_shapes(val_dir, max_files)
    if not rows:
        return None
    totals = {"right caption": 0.0, "wrong shape colour": 0.0, "wrong background colour": 0.0, "no caption": 0.0}
    size = 0
    for row in rows:
        data = (val_dir.parent / row["file"]).read_bytes()
        size += len(data)
        asks = row["asks"]
        wrong_shape, wrong_background = (changed_colour(asks[key], asks) for key in ("colour", "background"))
        captions = {"right caption": shape_caption(asks["shape"], asks["colour"], asks["background"]),
                    "wrong shape colour": shape_caption(asks["shape"], wrong_shape, asks["background"]),
                    # the background fills the first stored row: the nearest pixel to the caption
                    "wrong background colour": shape_caption(asks["shape"], asks["colour"], wrong_background),
                    "no caption": None}
        for name, caption in captions.items():
            parts = [(Modality.TEXT, caption.encode())] if caption else []
            prefix = document_tokens(parts + [(Modality.IMAGE, b"")])
            totals[name] += float(score_bytes(model, data, prefix=prefix).surprisal_bits.sum())
    return {"files": len(rows), "bytes": size, "bits": {name: round(bits, 1) for name, bits in totals.items()},
            "wrong_minus_right_bits_per_file": (totals["wrong shape colour"] - totals["right caption"]) / len(rows),
            "wrong_background_minus_right_bits_per_file":
                (totals["wrong background colour"] - totals["right caption"]) / len(rows),
            "none_minus_right_bits_per_file": (totals["no caption"] - totals["right caption"]) / len(rows)}


def evaluate(model: BytePredictor, corpus_dir: str | Path, samples: int = 32, max_files: int | None = 100,
             seed: int = 0, top_p: float | None = None, compression: bool = True, guidance_scale: float = 1.0,
             valid_utf8: bool = False, valid_media: bool = False) -> dict[str, Any]:
    """The whole report. Samples are drawn at temperature 1, nucleus-truncated when `top_p` is set;
    `guidance_scale` applies to the caption-conditioned ones (an unconditional prompt has no
    earlier part to follow), `valid_utf8` to text parts and `valid_media` to the others."""
    started = time.perf_counter()
    sampling = {"top_p": top_p, "guidance_scale": guidance_scale, "valid_utf8": valid_utf8,
                "valid_media": valid_media}
    report = {
        "compression": compression_table(model, Path(corpus_dir) / "val", max_files) if compression else {},
        "top_p": top_p,
        "guidance_scale": guidance_scale,
        "valid_utf8": valid_utf8,
        "valid_media": valid_media,
        "validity": sample_validity(model, samples, seed, sampling),
        "captions": caption_checks(model, max(1, samples // 8), seed, sampling),
        "caption_sensitivity": caption_sensitivity(model, Path(corpus_dir) / "val") if compression else None,
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def format_report(report: dict[str, Any]) -> str:
    sections = []
    if report["compression"]:
        table = ["| modality | files | model | gzip -9 | xz -9 | zstd -19 | PNG | FLAC | best classical |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for modality, row in report["compression"].items():
            cell = lambda key, row=row: f"{row[key]:.3f}" if key in row else "-"  # noqa: E731
            table.append(f"| {modality} | {row['files']} | {cell('model')} | {cell('gzip -9')} | {cell('xz -9')} | "
                         f"{cell('zstd -19')} | {cell('png')} | {cell('flac')} | {row['best_classical']} |")
        sections.append(table)
    sampling = "temperature 1" + (f", top-p {report['top_p']}" if report.get("top_p") else "") \
        + (f", guidance {report['guidance_scale']:g}" if report.get("guidance_scale", 1) != 1 else "") \
        + (", text kept to valid UTF-8" if report.get("valid_utf8") else "") \
        + (", media formats forced" if report.get("valid_media") else "")
    validity = [f"| unconditional samples ({sampling}) | valid | went on to another part |", "|---|---|---|"]
    for modality, row in report["validity"].items():
        validity.append(f"| {modality} | {row['valid']}/{row['samples']} ({row['share']:.0%}) "
                        f"| {row.get('went_on_to_another_part', '-')} |")
    sections.append(validity)
    captions = report["captions"]
    sections.append([f"caption-conditioned images with the asked colour: {captions['image_colour']['hits']}/"
                     f"{captions['image_colour']['samples']} ({captions['image_colour']['share']:.0%})",
                     f"caption-conditioned tones at the asked pitch (±5%): {captions['tone_pitch']['hits']}/"
                     f"{captions['tone_pitch']['samples']} ({captions['tone_pitch']['share']:.0%})"])
    sensitivity = report.get("caption_sensitivity")
    if sensitivity:
        bits = sensitivity["bits"]
        sections.append([f"caption sensitivity ({sensitivity['files']} held-out captioned shapes, total bits): "
                         f"right caption {bits['right caption']:,.0f}, shape colour changed "
                         f"{bits['wrong shape colour']:,.0f} ({sensitivity['wrong_minus_right_bits_per_file']:+.1f} "
                         f"per picture), background colour changed {bits['wrong background colour']:,.0f} "
                         f"({sensitivity['wrong_background_minus_right_bits_per_file']:+.1f} per picture), "
                         f"no caption {bits['no caption']:,.0f} "
                         f"({sensitivity['none_minus_right_bits_per_file']:+.1f} per picture)"])
    return "\n\n".join("\n".join(section) for section in sections)


def save_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# --- the real-world yardstick ---------------------------------------------------------------------

REAL_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "real"
_HALF = (BMP_BYTES - len(BMP_HEADER)) // 2  # the bottom 16 rows come first: BMP stores rows bottom up


def photo_continuation(model: BytePredictor, files: list[Path]) -> dict[str, Any]:
    """Bits the model needs for each photo's true top half given its bottom half (the first half
    stored), beside PNG of that top half on its own."""
    model_bits = png_bits = 0.0
    prefix = document_tokens([(Modality.IMAGE, b"")])
    for path in files:
        data = path.read_bytes()
        scores = score_bytes(model, data, prefix=prefix)
        model_bits += float(scores.surprisal_bits[len(BMP_HEADER) + _HALF:].sum())
        png_bits += 8 * png_size(decode_image(data).pixels[:16])
    return {"files": len(files), "model_bits_per_byte": model_bits / (_HALF * len(files)),
            "png_bits_per_byte": png_bits / (_HALF * len(files)), "model_over_png": model_bits / png_bits}


def continuation_grid(model: BytePredictor, files: list[Path], out: str | Path, seed: int = 0,
                      sampling: dict | None = None) -> None:
    """A PNG grid: for each photo the true picture, then the model's top half over the true bottom
    half, each drawn 4x. The pixels are the model's; the format guard only keeps the BMP's length."""
    sampling = {"top_p": 0.9, "valid_media": True} | (sampling or {})
    tiles = []
    for number, path in enumerate(files):
        data = path.read_bytes()
        prompt = document_tokens([(Modality.IMAGE, data[:len(BMP_HEADER) + _HALF])])
        result = generate(model, prompt, SamplingParams(max_new_bytes=_HALF, seed=seed + number, **sampling))[0]
        made = decode_image(data[:len(BMP_HEADER) + _HALF] + result.data[:_HALF]).pixels
        tiles.append(np.concatenate([decode_image(data).pixels, np.full((32, 4, 3), 255, np.uint8), made], axis=1))
    columns = 4
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)  # blank tiles fill the last row
    framed = [np.pad(tile, ((2, 2), (2, 6), (0, 0)), constant_values=255) for tile in tiles]
    rows = [np.concatenate(framed[start:start + columns], axis=1) for start in range(0, len(framed), columns)]
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.Resampling.NEAREST).save(out)


def real_world_report(model: BytePredictor, real_dir: str | Path = REAL_DIR, grid: str | Path | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """Bits per byte on the real-world yardstick (held-out photos, instruments and projects that
    never train, built by `real_material.build_yardstick`) beside the classical coders, and the
    photo continuation check; with `grid`, also the picture of generated top halves."""
    real_dir = Path(real_dir)
    if not (real_dir / "image").is_dir():
        raise OmniByteError(f"{real_dir} holds no real-world yardstick (image/, audio/, text/)")
    started = time.perf_counter()
    photos = sorted((real_dir / "image").glob("*.bmp"))
    report: dict[str, Any] = {"compression": compression_table(model, real_dir, max_files=None),
                              "photo_continuation": photo_continuation(model, photos)}
    for row in report["compression"].values():
        row["model_over_best"] = row["model"] / row[row["best_classical"]]
    if grid is not None:
        # the first two views of each photo: its centre square and one crop
        by_photo: dict[str, list[Path]] = {}
        for path in photos:
            by_photo.setdefault(path.stem.split("-", 1)[-1], []).append(path)
        continuation_grid(model, [p for views in by_photo.values() for p in views[:2]], grid, seed)
        report["grid"] = str(grid)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def format_real_report(report: dict[str, Any]) -> str:
    table = ["| real files | files | model | gzip -9 | xz -9 | zstd -19 | PNG | FLAC | best classical | model / best |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for modality, row in report["compression"].items():
        cell = lambda key, row=row: f"{row[key]:.3f}" if key in row else "-"  # noqa: E731
        table.append(f"| {modality} | {row['files']} | {cell('model')} | {cell('gzip -9')} | {cell('xz -9')} | "
                     f"{cell('zstd -19')} | {cell('png')} | {cell('flac')} | {row['best_classical']} | "
                     f"{row['model_over_best']:.2f} |")
    c = report["photo_continuation"]
    lines = ["\n".join(table),
             f"photo continuation ({c['files']} photos, the true top half given the bottom half): model "
             f"{c['model_bits_per_byte']:.3f} bits per byte, PNG of the half {c['png_bits_per_byte']:.3f} "
             f"(model / PNG {c['model_over_png']:.2f})"]
    if "grid" in report:
        lines.append(f"grid of generated top halves: {report['grid']}")
    return "\n\n".join(lines)
