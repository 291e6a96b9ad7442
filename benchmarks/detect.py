"""Modality detection: OmniByte's detector against libmagic and Magika on one labelled set.

The set is built in-process from a seed, from material made here or found with Python itself:
  - single files of every format: images (Pillow), audio (soundfile/libsndfile), Y4M and
    animated GIF video (in-process), AVI/MP4/WebM video (the `ffmpeg` program, skipped with a
    warning when it is missing), text (Python's own sources, generated prose in several scripts,
    JSON, HTML), and binaries (Python's own ELF extension modules, zip, gzip, PDF, SQLite);
  - the same cut to 30-60% of their length;
  - damaged headers as a byte model makes them: a wrong size field, a flipped magic byte, noise
    in the first 64 bytes;
  - headerless content: raw 8-bit PCM, raw RGB and grey pixels, compressed bytes and zeros;
  - mixed streams of 2-5 parts with known boundaries: whole files ("intact"), headerless parts
    ("stripped"), and cut or damaged files ("damaged", reported, no target).

Scores, side by side: modality accuracy per set; boundary precision/recall/F1 within +-16 bytes
and the share of bytes given the right modality on the mixed sets; ms per file and MB/s.
libmagic and Magika name one type per input, so on a mixed stream they get one segment; the
`windowed` rows give them a fairer chance by labelling every 1024-byte window on its own.

With `--real`, the set is instead this machine's own installed files (`real_files.py`): whole-file
modality per kind for the three tools, and every file any tool missed.

Needs: `pip install -r benchmarks/requirements.txt` (python-magic, magika) and, from Debian,
`libmagic1` and `ffmpeg`.

    python -m benchmarks.detect --json benchmarks/results/detect.json --md benchmarks/results/detect.md
    python -m benchmarks.detect --real --json benchmarks/results/detect-real.json --md benchmarks/results/detect-real.md
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import platform
import shutil
import sqlite3
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from benchmarks.real_files import sample_files
from omnibyte.detector import ModalityDetector

TOLERANCE = 16  # bytes either side of a true boundary that still count as finding it
WINDOW = 1024  # what the windowed baselines label at a time

# ---------------------------------------------------------------------------------------------
# material


@dataclass(frozen=True)
class Sample:
    name: str
    format: str
    modality: str
    data: bytes
    header: int = 0  # bytes of header to strip for the headerless set (0: not strippable)


@dataclass
class Part:
    modality: str
    data: bytes
    label: str


@dataclass
class Stream:
    name: str
    parts: list[Part] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(p.data for p in self.parts)

    def boundaries(self) -> list[int]:
        out, pos = [], 0
        for p in self.parts[:-1]:
            pos += len(p.data)
            out.append(pos)
        return out


_SCRIPTS = [
    "The quick brown fox jumps over the lazy dog while the committee debates the budget. ",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва, набережная. ",
    "我们在这里讨论字节级别的变换器模型，它可以同时处理文本、图像和声音。",
    "日本語の文章も正しくテキストとして認識されるべきです。東京は晴れです。",
    "العربية لغة جميلة ويكتبها الناس من اليمين إلى اليسار في كل مكان. ",
    "हिन्दी भाषा में यह एक परीक्षण वाक्य है जो पाठ की पहचान के लिए है। ",
    "Ελληνικά: η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο. ",
    "한국어 문장도 텍스트로 인식되어야 합니다. 서울의 날씨는 맑습니다. ",
    "Emoji too: 🎉🚀✨ — naïve café, São Paulo, Zürich, Kraków. ",
]


def _rng_text(rng: np.random.Generator, n: int) -> str:
    out = []
    while sum(len(s) for s in out) < n:
        out.append(_SCRIPTS[rng.integers(len(_SCRIPTS))])
        if rng.random() < 0.2:
            out.append("\n\n")
    return "".join(out)


def _python_sources() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.glob("*.py") if 2_000 < p.stat().st_size < 200_000)


def _elf_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    return sorted(p for p in root.glob("*.so") if p.stat().st_size < 100_000)


def _json_doc(rng: np.random.Generator) -> bytes:
    def value(depth: int):
        k = rng.integers(6 if depth < 3 else 4)
        if k == 0:
            return int(rng.integers(-10**6, 10**6))
        if k == 1:
            return float(np.round(rng.normal() * 100, 3))
        if k == 2:
            return _rng_text(rng, 20)[: int(rng.integers(3, 30))]
        if k == 3:
            return bool(rng.integers(2))
        if k == 4:
            return [value(depth + 1) for _ in range(rng.integers(1, 6))]
        return {f"key_{i}": value(depth + 1) for i in range(rng.integers(1, 6))}

    doc = {f"item{i}": value(0) for i in range(rng.integers(5, 40))}
    indent = None if rng.random() < 0.5 else 2
    return json.dumps(doc, ensure_ascii=bool(rng.integers(2)), indent=indent).encode()


def _html_doc(rng: np.random.Generator) -> bytes:
    body = "".join(f"<p class=\"c{i}\">{_rng_text(rng, 80)}</p>\n" for i in range(rng.integers(3, 20)))
    return f"<!DOCTYPE html>\n<html><head><title>t</title></head><body>\n{body}</body></html>\n".encode()


def _picture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A photo-like RGB picture: smooth colour fields, shapes, some noise, sometimes text."""
    kind = rng.integers(4)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == 0:  # gradients
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (x / max(w - 1, 1) * rng.uniform(0.2, 1) + y / max(h - 1, 1) * rng.uniform(0.2, 1)) / 2
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == 1:  # smooth random field
        small = rng.uniform(0, 255, (max(h // 8, 2), max(w // 8, 2), 3))
        img = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=np.float64)
    elif kind == 2:  # sinusoidal texture
        f = rng.uniform(0.02, 0.3, 3)
        img = np.stack([127 + 100 * np.sin(f[i] * x + f[(i + 1) % 3] * y + i) for i in range(3)], -1)
    else:  # dark scene
        img = np.full((h, w, 3), rng.uniform(10, 80, 3)) + 20 * np.sin(x / max(w, 1) * 6)[..., None]
    im = Image.fromarray(np.clip(img + rng.normal(0, rng.uniform(0, 6), img.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(0, 5)):
        x0, y0 = int(rng.integers(w)), int(rng.integers(h))
        box = [x0, y0, x0 + int(rng.integers(2, w // 2 + 3)), y0 + int(rng.integers(2, h // 2 + 3))]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    if rng.random() < 0.3 and w >= 32:
        draw.text((2, h // 3), "OmniByte", fill=(255, 255, 255))
    return np.asarray(im)


def _sound(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """A float signal in [-1, 1]: tones, chords, sweeps, noisy speech-like bursts."""
    n = max(int(rate * seconds), 64)
    t = np.arange(n) / rate
    kind = rng.integers(4)
    if kind == 0:
        x = np.sin(2 * np.pi * rng.uniform(80, 1200) * t)
    elif kind == 1:
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 900, 3)) / 3
    elif kind == 2:
        f0, f1 = rng.uniform(50, 300), rng.uniform(500, min(3000, rate / 2.5))
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    else:
        noise = rng.normal(0, 1, n)
        k = int(rng.integers(4, 24))
        noise = np.convolve(noise, np.ones(k) / k, mode="same") * math.sqrt(k) / 2
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
        x = np.clip(noise * envelope, -1, 1)
    fade = np.minimum(1, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * rate + 1))
    return x * fade * rng.uniform(0.15, 0.95)


def pcm_u8(rng: np.random.Generator, n: int) -> bytes:
    return np.clip(np.round(_sound(rng, 8000, n / 8000) * 127 + 128), 0, 255).astype(np.uint8).tobytes()[:n]


def _y4m(frames: np.ndarray, colour: str = "mono") -> bytes:
    n, h, w = frames.shape
    out = [f"YUV4MPEG2 W{w} H{h} F8:1 Ip A1:1 C{colour}\n".encode()]
    chroma = b"" if colour == "mono" else bytes([128]) * (2 * ((w + 1) // 2) * ((h + 1) // 2))
    for f in frames:
        out.append(b"FRAME\n" + f.tobytes() + chroma)
    return b"".join(out)


def _frames(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    base = _picture(rng, w + n * 2, h).mean(axis=2)
    return np.stack([base[:, 2 * i: 2 * i + w] for i in range(n)]).astype(np.uint8)


def _ffmpeg(y4m: bytes, fmt: str) -> bytes | None:
    if shutil.which("ffmpeg") is None:
        return None
    codec = {"avi": ["-c:v", "mjpeg", "-q:v", "5"],
             "mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
             "webm": ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime"]}[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"v.{fmt}"
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-", *codec, "-threads", "1",
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", str(out)]
        done = subprocess.run(cmd, input=y4m, capture_output=True, timeout=60)
        return out.read_bytes() if done.returncode == 0 and out.exists() else None


def _pdf(rng: np.random.Generator) -> bytes:
    if rng.random() < 0.5:
        buf = io.BytesIO()
        epoch = time.gmtime(0)  # Pillow stamps the time of saving; a fixed one keeps the samples reproducible
        Image.fromarray(_picture(rng, 64, 48)).save(buf, format="PDF", creationDate=epoch, modDate=epoch)
        return buf.getvalue()
    text = _rng_text(rng, 60).encode("ascii", "replace").decode()
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _sqlite(rng: np.random.Generator) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite"
        con = sqlite3.connect(path)
        con.execute("create table t (id integer primary key, name text, value real)")
        con.executemany("insert into t values (?, ?, ?)",
                        [(i, _rng_text(rng, 20)[:20], float(rng.normal())) for i in range(int(rng.integers(10, 400)))])
        con.commit()
        con.close()
        return path.read_bytes()


def _zip(rng: np.random.Generator, texts: list[bytes]) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if rng.random() < 0.7 else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for i in range(int(rng.integers(1, 4))):
            info = zipfile.ZipInfo(f"file{i}.txt", date_time=(2024, 1, 1, 0, 0, 0))
            z.writestr(info, texts[int(rng.integers(len(texts)))][: int(rng.integers(500, 20000))],
                       compress_type=method)
    return buf.getvalue()


def _image_file(rng: np.random.Generator, fmt: str) -> bytes:
    w, h = int(rng.choice([16, 32, 48, 64, 100, 160])), int(rng.choice([16, 32, 40, 64, 90, 120]))
    im = Image.fromarray(_picture(rng, w, h))
    buf = io.BytesIO()
    if fmt == "gif":
        im.convert("P", palette=Image.Palette.ADAPTIVE).save(buf, format="GIF")
    elif fmt == "jpeg":
        im.save(buf, format="JPEG", quality=int(rng.integers(30, 95)))
    elif fmt == "webp":
        im.save(buf, format="WEBP", quality=int(rng.integers(30, 95)), lossless=bool(rng.random() < 0.3))
    elif fmt == "tiff":
        im.save(buf, format="TIFF", compression=None if rng.random() < 0.6 else "tiff_lzw")
    elif fmt == "ppm":
        (im if rng.random() < 0.7 else im.convert("L")).save(buf, format="PPM")
    else:
        im.save(buf, format=fmt.upper())
    return buf.getvalue()


def _audio_file(rng: np.random.Generator, fmt: str) -> bytes:
    rate = int(rng.choice([8000, 11025, 16000, 22050]))
    x = _sound(rng, rate, float(rng.uniform(0.2, 1.0)))
    buf = io.BytesIO()
    subtype = {"wav": str(rng.choice(["PCM_U8", "PCM_16"])), "aiff": "PCM_16",
               "au": str(rng.choice(["PCM_16", "ULAW"])), "flac": "PCM_16", "ogg": "VORBIS",
               "mp3": "MPEG_LAYER_III"}[fmt]
    sf.write(buf, x, rate, format={"ogg": "OGG", "mp3": "MP3"}.get(fmt, fmt.upper()), subtype=subtype)
    if fmt == "ogg":  # libsndfile draws the stream's serial number at random: fix it, for reproducible
        # samples (from the sound itself, so that the other samples' draws stay as they were)
        return _ogg_with_serial(buf.getvalue(), zlib.crc32(x.tobytes()))
    return buf.getvalue()


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, no final XOR (RFC 3533)."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_with_serial(data: bytes, serial: int) -> bytes:
    """Every page of a one-stream Ogg file given `serial`, its checksum recomputed."""
    out, pos = bytearray(data), 0
    while pos + 27 <= len(out) and out[pos:pos + 4] == b"OggS":
        segments = out[pos + 26]
        size = 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        out[pos + 14:pos + 18] = struct.pack("<I", serial)
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        out[pos + 22:pos + 26] = struct.pack("<I", _ogg_crc(bytes(out[pos:pos + size])))
        pos += size
    return bytes(out)


def _native(rng: np.random.Generator) -> list[Sample]:
    """The model's own formats, built field by field as the codecs define them."""
    from omnibyte.codecs.audio import wav_header
    from omnibyte.codecs.image import BMP_HEADER

    out = []
    for i in range(4):
        pixels = _picture(rng, 32, 32)[::-1, :, ::-1]  # bottom-up BGR
        out.append(Sample(f"native-bmp-{i}", "bmp", "image", BMP_HEADER + pixels.tobytes(), header=54))
        out.append(Sample(f"native-wav-{i}", "wav", "audio", wav_header(4000) + pcm_u8(rng, 4000), header=44))
        out.append(Sample(f"native-y4m-{i}", "y4m", "video", _y4m(_frames(rng, 8, 16, 16))))
    return out


def build_singles(seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    sources = _python_sources()
    texts = [sources[i].read_bytes() for i in rng.choice(len(sources), 12, replace=False)]
    samples = _native(rng)
    per = 6
    for fmt in ("bmp", "png", "jpeg", "gif", "tiff", "webp", "ppm"):
        for i in range(per):
            samples.append(Sample(f"{fmt}-{i}", fmt, "image", _image_file(rng, fmt)))
    for fmt in ("wav", "aiff", "au", "flac", "ogg", "mp3"):
        for i in range(per):
            samples.append(Sample(f"{fmt}-{i}", fmt, "audio", _audio_file(rng, fmt)))
    for i in range(per):
        frames = _frames(rng, int(rng.integers(4, 12)), 24, 32)
        samples.append(Sample(f"y4m-{i}", "y4m", "video", _y4m(frames, str(rng.choice(["mono", "420jpeg"])))))
        buf = io.BytesIO()
        ims = [Image.fromarray(f).convert("P") for f in frames]
        ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
        samples.append(Sample(f"gif-anim-{i}", "gif", "video", buf.getvalue()))
    for fmt in ("avi", "mp4", "webm"):
        for i in range(per):
            y4m = _y4m(_frames(rng, int(rng.integers(4, 10)), 32, 48), "420jpeg")
            video = _ffmpeg(y4m, fmt)
            if video is None:
                warnings.warn(f"ffmpeg missing or failed: no {fmt} samples", stacklevel=2)
                break
            samples.append(Sample(f"{fmt}-{i}", fmt, "video", video))
    for i in range(per):
        samples.append(Sample(f"py-{i}", "python", "text", texts[i][: int(rng.integers(300, 30000))]))
        samples.append(Sample(f"prose-{i}", "utf-8", "text", _rng_text(rng, int(rng.integers(40, 4000))).encode()))
        samples.append(Sample(f"json-{i}", "json", "text", _json_doc(rng)))
        samples.append(Sample(f"html-{i}", "utf-8", "text", _html_doc(rng)))
    elves = _elf_files()
    for i, k in enumerate(rng.choice(len(elves), per, replace=False)):
        samples.append(Sample(f"elf-{i}", "elf", "binary", elves[k].read_bytes()))
    for i in range(per):
        samples.append(Sample(f"zip-{i}", "zip", "binary", _zip(rng, texts)))
        samples.append(Sample(f"gzip-{i}", "gzip", "binary",
                              gzip.compress(texts[int(rng.integers(len(texts)))][: int(rng.integers(300, 30000))],
                                            mtime=0)))
        samples.append(Sample(f"pdf-{i}", "pdf", "binary", _pdf(rng)))
        samples.append(Sample(f"sqlite-{i}", "sqlite", "binary", _sqlite(rng)))
    return samples


def build_headerless(seed: int) -> list[Sample]:
    """Content without any header: raw 8-bit PCM, raw RGB and grey pixels, compressed bytes, zeros."""
    rng = np.random.default_rng(seed)
    sources = _python_sources()
    out = []
    for i in range(24):
        out.append(Sample(f"raw-pcm-{i}", "pcm", "audio", pcm_u8(rng, int(rng.integers(400, 16000)))))
    for i in range(16):
        w, h = int(rng.choice([16, 32, 48, 64, 96])), int(rng.choice([16, 32, 48, 64]))
        pixels = _picture(rng, w, h)[::-1, :, ::-1] if rng.random() < 0.5 else _picture(rng, w, h)
        out.append(Sample(f"raw-rgb-{i}", "pixels", "image", pixels.tobytes()))
    for i in range(8):
        frames = _frames(rng, int(rng.integers(1, 8)), 16 * int(rng.integers(1, 3)), 16 * int(rng.integers(1, 4)))
        out.append(Sample(f"raw-grey-{i}", "pixels", "image", frames.tobytes()))
    for i in range(8):
        text = sources[int(rng.integers(len(sources)))].read_bytes()
        raw = zlib.compress(text, 9)[2:-4]  # a bare deflate stream: no zlib or gzip header
        out.append(Sample(f"raw-deflate-{i}", "unknown", "binary", raw[: int(rng.integers(300, 20000))]))
    for i in range(4):
        out.append(Sample(f"zeros-{i}", "zeros", "binary", bytes(int(rng.integers(100, 5000)))))
    return out


# ---------------------------------------------------------------------------------------------
# damage, as a byte model makes it


def _riff_data_size(d: bytes) -> list[int]:
    i = d.find(b"data", 12)
    return [i + 4] if i > 0 else []


# where each format keeps a size (or other layout) field: (offsets, struct format)
_SIZE_FIELDS = {
    "bmp": (lambda d: [2], "<I"), "wav": (lambda d: [4] + _riff_data_size(d), "<I"), "avi": (lambda d: [4], "<I"),
    "webp": (lambda d: [4], "<I"), "aiff": (lambda d: [4], ">I"), "au": (lambda d: [8], ">I"),
    "png": (lambda d: [d.find(b"IDAT") - 4], ">I"), "jpeg": (lambda d: [4], ">H"), "gif": (lambda d: [6], "<H"),
    "tiff": (lambda d: [4], "<I"), "flac": (lambda d: [22], ">I"),
    "ogg": (lambda d: [6], "<I"), "mp3": (lambda d: [2], "B"), "mp4": (lambda d: [0], ">I"),
    "webm": (lambda d: [d.find(b"\x18\x53\x80\x67") + 5], ">I"), "elf": (lambda d: [40], "<I"),
    "zip": (lambda d: [d.rfind(b"PK\x05\x06") + 16], "<I"), "gzip": (lambda d: [len(d) - 4], "<I"),
    "pdf": (lambda d: [d.rfind(b"startxref") + 10], "4s"), "sqlite": (lambda d: [28], ">I"),
}
_MAGIC_SPAN = {"bmp": (0, 2), "png": (0, 8), "jpeg": (0, 3), "gif": (0, 6), "tiff": (0, 4), "webp": (0, 4),
               "ppm": (0, 2), "wav": (0, 4), "aiff": (0, 4), "au": (0, 4), "flac": (0, 4), "ogg": (0, 4),
               "mp3": (0, 2), "y4m": (0, 9), "avi": (0, 4), "mp4": (4, 8), "webm": (0, 4), "elf": (0, 4),
               "zip": (0, 4), "gzip": (0, 2), "pdf": (0, 5), "sqlite": (0, 16)}
DAMAGE_KINDS = ("size", "magic", "noise")


def damage(sample: Sample, kind: str, rng: np.random.Generator) -> bytes:
    d = bytearray(sample.data)
    if kind == "size":
        if sample.format in ("ppm", "y4m"):  # sizes written as ASCII digits
            i = d.find(b"W") if sample.format == "y4m" else d.find(b"\n") + 1
            d[i + 1] = ord("1") + (d[i + 1] - ord("0")) % 8 + 1 if d[i + 1] != ord("9") else ord("3")
            return bytes(d)
        if sample.modality == "text":
            kind = "noise"
        else:
            where, fmt = _SIZE_FIELDS[sample.format]
            for off in where(bytes(d)):
                width = struct.calcsize(fmt)
                if 0 <= off <= len(d) - width:
                    d[off:off + width] = rng.integers(0, 256, width, dtype=np.uint8).tobytes()
            return bytes(d)
    if kind == "magic" and sample.format in _MAGIC_SPAN:
        lo, hi = _MAGIC_SPAN[sample.format]
        i = int(rng.integers(lo, hi))
        d[i] ^= int(rng.integers(1, 256))
        return bytes(d)
    # noise: two bytes of the first 64 changed (text: two bytes anywhere become invalid UTF-8)
    span = len(d) if sample.modality == "text" else min(64, len(d))
    for i in rng.choice(span, size=min(2, span), replace=False):
        d[int(i)] = 0xFF if sample.modality == "text" else int(rng.integers(256))
    return bytes(d)


def build_sets(seed: int) -> dict[str, list[Sample]]:
    rng = np.random.default_rng(seed + 1)
    singles = build_singles(seed)
    truncated = [Sample(s.name + "-cut", s.format, s.modality,
                        s.data[: max(8, int(len(s.data) * rng.uniform(0.3, 0.6)))])
                 for s in singles]
    damaged = [Sample(f"{s.name}-{kind}", s.format, s.modality, damage(s, kind, rng))
               for s in singles for kind in DAMAGE_KINDS]
    return {"single": singles, "truncated": truncated, "damaged": damaged, "headerless": build_headerless(seed + 2)}


def _stripped_part(rng: np.random.Generator, kind: str, texts: list[bytes]) -> Part:
    n = int(rng.integers(400, 8000))
    if kind == "text":
        t = texts[int(rng.integers(len(texts)))]
        s = int(rng.integers(0, max(1, len(t) - n)))
        chunk = t[s:s + n].decode("utf-8", "ignore").encode()
        return Part("text", chunk, "text")
    if kind == "pcm":
        return Part("audio", pcm_u8(rng, n), "pcm")
    if kind == "rgb":
        w = int(rng.choice([16, 32, 48, 64]))
        return Part("image", _picture(rng, w, max(4, n // (3 * w))).tobytes(), "rgb")
    if kind == "grey":
        return Part("image", _frames(rng, int(rng.integers(1, 6)), 16, 16).tobytes(), "grey")
    if kind == "deflate":  # a bare deflate stream of several different texts
        t = b"".join(texts[int(i)] for i in rng.choice(len(texts), 4, replace=False))
        return Part("binary", zlib.compress(t, 9)[2:2 + n], "deflate")
    return Part("binary", bytes(int(rng.integers(64, 1000))), "zeros")


def build_mixed(seed: int, singles: list[Sample], count: int = 150) -> dict[str, list[Stream]]:
    rng = np.random.default_rng(seed + 3)
    texts = [s.data for s in singles if s.modality == "text"] + [_rng_text(rng, 9000).encode() for _ in range(4)]
    whole = [s for s in singles]
    intact, stripped, damaged_ = [], [], []
    for i in range(count):
        st = Stream(f"intact-{i}")
        while len(st.parts) < int(rng.integers(2, 6)) or not st.parts:
            s = whole[int(rng.integers(len(whole)))]
            if st.parts and st.parts[-1].modality == "text" and s.modality == "text":
                continue  # two texts in a row have no boundary to find
            st.parts.append(Part(s.modality, s.data, s.format))
        intact.append(st)
        st = Stream(f"stripped-{i}")
        kinds = ["text", "pcm", "rgb", "grey", "deflate", "zeros"]
        target = int(rng.integers(2, 6))
        while len(st.parts) < target:
            kind = str(rng.choice(kinds, p=[0.25, 0.25, 0.2, 0.1, 0.15, 0.05]))
            if st.parts and st.parts[-1].label == kind:
                continue
            if st.parts and {st.parts[-1].label, kind} == {"rgb", "grey"}:
                continue  # both raw pixels: no boundary a reader could see either
            st.parts.append(_stripped_part(rng, kind, texts))
        stripped.append(st)
    for i in range(count * 2 // 3):
        st = Stream(f"damaged-{i}")
        while len(st.parts) < int(rng.integers(2, 6)):
            s = whole[int(rng.integers(len(whole)))]
            if st.parts and st.parts[-1].modality == "text" and s.modality == "text":
                continue
            if rng.random() < 0.5:
                data = s.data[: max(8, int(len(s.data) * rng.uniform(0.3, 0.9)))]
            else:
                data = damage(s, str(rng.choice(DAMAGE_KINDS)), rng)
            st.parts.append(Part(s.modality, data, s.format))
        damaged_.append(st)
    return {"mixed-intact": intact, "mixed-stripped": stripped, "mixed-damaged": damaged_}


def speed_stream(mixed: dict[str, list[Stream]], size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed + 4)
    pool = [s for name in ("mixed-intact", "mixed-stripped") for s in mixed[name]]
    out, total = [], 0
    while total < size:
        data = pool[int(rng.integers(len(pool)))].data
        out.append(data)
        total += len(data)
    return b"".join(out)[:size]


# ---------------------------------------------------------------------------------------------
# the tools, each as: bytes -> [(start, end, modality)]

Segmentation = list[tuple[int, int, str]]


def _libmagic_modality(mime: str) -> str:
    if mime.startswith(("image/", "audio/", "video/")):
        return mime.split("/")[0]
    if mime.startswith("text/") or mime in ("application/json", "application/x-ndjson"):
        return "text"
    if mime == "application/ogg":
        return "audio"
    return "binary"


class Tools:
    def __init__(self, windowed: bool = True):
        self.omnibyte = ModalityDetector()
        self.names = ["OmniByte"]
        try:
            import magic

            self._magic = magic.Magic(mime=True)
            self.names.append("libmagic")
        except Exception as exc:
            print(f"libmagic unavailable ({exc}); pip install python-magic, apt-get install libmagic1", file=sys.stderr)
            self._magic = None
        try:
            from magika import Magika

            self._magika = Magika()
            self.names.append("Magika")
        except Exception as exc:
            print(f"Magika unavailable ({exc}); pip install magika", file=sys.stderr)
            self._magika = None
        self.windowed = windowed

    def label(self, tool: str, data: bytes) -> str:
        if tool == "libmagic":
            return _libmagic_modality(self._magic.from_buffer(data))
        out = self._magika.identify_bytes(data).output
        if out.group in ("image", "audio", "video"):
            return out.group
        return "text" if out.is_text else "binary"

    def segment(self, tool: str, data: bytes) -> Segmentation:
        if tool == "OmniByte":
            return [(s.start, s.end, s.modality.value) for s in self.omnibyte.detect_bytes(data)]
        if tool.endswith("windowed"):
            base = tool.split()[0]
            out: Segmentation = []
            for lo in range(0, len(data), WINDOW):
                m = self.label(base, data[lo:lo + WINDOW])
                if out and out[-1][2] == m:
                    out[-1] = (out[-1][0], min(len(data), lo + WINDOW), m)
                else:
                    out.append((lo, min(len(data), lo + WINDOW), m))
            return out
        return [(0, len(data), self.label(tool, data))] if data else []


# ---------------------------------------------------------------------------------------------
# scores


def majority(segs: Segmentation) -> str | None:
    sizes: dict[str, int] = {}
    for s, e, m in segs:
        sizes[m] = sizes.get(m, 0) + e - s
    return max(sizes, key=sizes.__getitem__) if sizes else None


def boundary_counts(pred: list[int], truth: list[int]) -> tuple[int, int, int]:
    """(true positives, predicted, true) with one-to-one matching within TOLERANCE."""
    used, tp = set(), 0
    for t in truth:
        best = min((abs(p - t), i) for i, p in enumerate(pred) if i not in used) if len(used) < len(pred) else None
        if best is not None and best[0] <= TOLERANCE:
            used.add(best[1])
            tp += 1
    return tp, len(pred), len(truth)


def byte_share(segs: Segmentation, stream: Stream) -> tuple[int, int]:
    right, pos = 0, 0
    for part in stream.parts:
        lo, hi = pos, pos + len(part.data)
        for s, e, m in segs:
            if m == part.modality:
                right += max(0, min(e, hi) - max(s, lo))
        pos = hi
    return right, pos


def score_files(tools: Tools, tool: str, samples: list[Sample]) -> dict:
    right, one, fmt_right, times = 0, 0, 0, []
    misses = []
    for s in samples:
        t0 = time.perf_counter()
        segs = tools.segment(tool, s.data)
        times.append(time.perf_counter() - t0)
        ok = majority(segs) == s.modality
        right += ok
        one += len(segs) == 1 and ok
        if tool == "OmniByte":
            found = tools.omnibyte.detect_bytes(s.data)
            top = max(found, key=lambda g: g.size) if found else None
            fmt_right += top is not None and top.format == s.format
        if not ok:
            misses.append(s.name)
    n = len(samples)
    out = {"files": n, "accuracy": right / n, "one_segment": one / n, "ms_per_file": 1000 * float(np.mean(times)),
           "misses": misses}
    if tool == "OmniByte":
        out["format_accuracy"] = fmt_right / n
    return out


def score_streams(tools: Tools, tool: str, streams: list[Stream]) -> dict:
    tp = npred = ntrue = right = total = 0
    for st in streams:
        data = st.data
        segs = tools.segment(tool, data)
        pred = [s for s, _, _ in segs[1:]]
        a, b, c = boundary_counts(pred, st.boundaries())
        tp, npred, ntrue = tp + a, npred + b, ntrue + c
        r, t = byte_share(segs, st)
        right, total = right + r, total + t
    precision = tp / npred if npred else 0.0
    recall = tp / ntrue if ntrue else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"streams": len(streams), "boundaries": ntrue, "precision": precision, "recall": recall, "f1": f1,
            "byte_share": right / total if total else 0.0}


def throughput(tools: Tools, tool: str, data: bytes, repeats: int = 3) -> float:
    """MB/s over the whole stream, best of `repeats` runs (a shared VM's timings wander)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        tools.segment(tool, data)
        best = min(best, time.perf_counter() - t0)
    return len(data) / 1e6 / best


# ---------------------------------------------------------------------------------------------
# the run


FILE_SETS = ("single", "truncated", "damaged", "headerless")
STREAM_SETS = ("mixed-intact", "mixed-stripped", "mixed-damaged")
TARGETS = {"single": 0.99, "truncated": 0.99, "damaged": 0.95, "mixed-intact": 0.95, "mixed-stripped": 0.80,
           "MB/s": 20.0}


def run(seed: int, speed_mb: int, windowed: bool) -> dict:
    started = time.perf_counter()
    sets = build_sets(seed)
    mixed = build_mixed(seed, sets["single"])
    stream = speed_stream(mixed, speed_mb * 1_000_000, seed)
    print(f"built the set in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{len(v)} {k}" for k, v in {**sets, **mixed}.items()), file=sys.stderr)
    tools = Tools()
    results: dict = {"seed": seed,
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                     "tolerance_bytes": TOLERANCE, "files": {}, "streams": {}, "speed": {}}
    for tool in tools.names:
        results["files"][tool] = {name: score_files(tools, tool, sets[name]) for name in FILE_SETS}
        variants = [tool] + ([f"{tool} windowed"] if windowed and tool != "OmniByte" else [])
        for variant in variants:
            results["streams"][variant] = {name: score_streams(tools, variant, mixed[name]) for name in STREAM_SETS}
        small = [s for s in sets["single"] if len(s.data) <= 64 * 1024]
        tools.segment(tool, stream[:1 << 16])  # warm up (Magika loads its model on first use)
        results["speed"][tool] = {
            "ms_per_small_file": 1000 * float(np.mean([_timed(tools, tool, s.data) for s in small])),
            "small_files": len(small),
            "mb_per_s_10mb_stream": throughput(tools, tool, stream),
            "stream_mb": len(stream) / 1e6,
        }
        print(f"scored {tool}", file=sys.stderr)
    results["targets"] = targets_met(results)
    results["seconds"] = time.perf_counter() - started
    return results


def _timed(tools: Tools, tool: str, data: bytes) -> float:
    t0 = time.perf_counter()
    tools.segment(tool, data)
    return time.perf_counter() - t0


def targets_met(r: dict) -> dict:
    ours, out = r["files"]["OmniByte"], {}
    for name in ("single", "truncated", "damaged"):
        out[f"accuracy {name} >= {TARGETS[name]:.0%}"] = ours[name]["accuracy"] >= TARGETS[name]
    for name in ("mixed-intact", "mixed-stripped"):
        out[f"boundary F1 {name} >= {TARGETS[name]:.2f}"] = r["streams"]["OmniByte"][name]["f1"] >= TARGETS[name]
    out[f">= {TARGETS['MB/s']:.0f} MB/s"] = r["speed"]["OmniByte"]["mb_per_s_10mb_stream"] >= TARGETS["MB/s"]
    ahead = True
    for tool in r["files"]:
        if tool == "OmniByte":
            continue
        for name in FILE_SETS:
            ahead &= ours[name]["accuracy"] > r["files"][tool][name]["accuracy"]
    for variant in r["streams"]:
        if variant == "OmniByte":
            continue
        for name in STREAM_SETS:
            for key in ("f1", "byte_share"):
                ahead &= r["streams"]["OmniByte"][name][key] > r["streams"][variant][name][key]
    out["ahead of libmagic and Magika on every accuracy column"] = ahead
    return out


def markdown(r: dict) -> str:
    lines = [f"Seed {r['seed']}, {r['machine']}; boundaries count within +-{r['tolerance_bytes']} bytes.", "",
             "Modality accuracy (share of files whose largest segment has the right modality):", "",
             "| tool | " + " | ".join(FILE_SETS) + " | ms/small file | MB/s (10 MB stream, best of 3) |",
             "|---" * (len(FILE_SETS) + 3) + "|"]
    for tool, sets in r["files"].items():
        sp = r["speed"][tool]
        lines.append(f"| {tool} | " + " | ".join(f"{sets[n]['accuracy']:.1%}" for n in FILE_SETS)
                     + f" | {sp['ms_per_small_file']:.2f} | {sp['mb_per_s_10mb_stream']:.1f} |")
    sizes = {n: r["files"]["OmniByte"][n]["files"] for n in FILE_SETS}
    lines += ["", "Files: " + ", ".join(f"{v} {k}" for k, v in sizes.items())
              + ". OmniByte's format accuracy (largest segment): "
              + ", ".join(f"{n} {r['files']['OmniByte'][n]['format_accuracy']:.1%}" for n in FILE_SETS)
              + ("; single files reported as exactly one segment: "
                 f"{r['files']['OmniByte']['single']['one_segment']:.1%}."),
              "",
              "Mixed streams: boundary precision / recall / F1, and the share of bytes given the right modality:", "",
              "| tool | " + " | ".join(STREAM_SETS) + " |", "|---" * (len(STREAM_SETS) + 1) + "|"]
    for variant, sets in r["streams"].items():
        lines.append(f"| {variant} | " + " | ".join(
            f"P {s['precision']:.2f} R {s['recall']:.2f} **F1 {s['f1']:.2f}**, bytes {s['byte_share']:.1%}"
            for s in (sets[n] for n in STREAM_SETS)) + " |")
    counts = {n: (r["streams"]["OmniByte"][n]["streams"], r["streams"]["OmniByte"][n]["boundaries"])
              for n in STREAM_SETS}
    lines += ["", "Streams (boundaries): " + ", ".join(f"{k} {a} ({b})" for k, (a, b) in counts.items()), "",
              "Targets:", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in r["targets"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the real-file run


REAL_TARGET = 0.99  # whole-file modality, overall and on every text kind


def run_real(seed: int, per_kind: int) -> dict:
    started = time.perf_counter()
    files = sample_files(seed, per_kind)
    kinds = sorted({f.kind for f in files})
    print(f"sampled {len(files)} files of {len(kinds)} kinds in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    tools = Tools(windowed=False)
    per_kind_right = {tool: {k: 0 for k in kinds} for tool in tools.names}
    counts = {k: 0 for k in kinds}
    misses, one_segment_text, text_files, seconds = [], 0, 0, {tool: 0.0 for tool in tools.names}
    for f in files:
        counts[f.kind] += 1
        said = {}
        for tool in tools.names:
            t0 = time.perf_counter()
            said[tool] = majority(tools.segment(tool, f.data))
            seconds[tool] += time.perf_counter() - t0
            per_kind_right[tool][f.kind] += said[tool] == f.modality
        if f.modality == "text":
            text_files += 1
            one_segment_text += len(tools.omnibyte.detect_bytes(f.data)) == 1
        if any(m != f.modality for m in said.values()):
            segs = tools.omnibyte.detect_bytes(f.data)
            misses.append({"kind": f.kind, "path": f.path, "bytes": len(f.data), "truth": f.modality, **said,
                           "omnibyte_segments": [f"{s.start}-{s.end} {s.modality.value}/{s.format}" for s in segs[:6]]
                           + (["..."] if len(segs) > 6 else [])})
    n = len(files)
    results: dict = {
        "seed": seed, "per_kind_cap": per_kind,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "files": n, "kinds": len(kinds), "counts": counts,
        # a kind's modality is its files' most common one (an animated GIF is video, a still one an image)
        "truth": {k: max(set(ms := [f.modality for f in files if f.kind == k]), key=ms.count) for k in kinds},
        "accuracy": {tool: sum(per_kind_right[tool].values()) / n for tool in tools.names},
        "per_kind": {tool: {k: per_kind_right[tool][k] / counts[k] for k in kinds} for tool in tools.names},
        "ms_per_file": {tool: 1000 * seconds[tool] / n for tool in tools.names},
        "text_files_one_segment": one_segment_text / max(1, text_files),
        "misses": misses,
    }
    ours = results["per_kind"]["OmniByte"]
    text_kinds = [k for k in kinds if results["truth"][k] == "text"]
    results["targets"] = {
        f"whole-file modality >= {REAL_TARGET:.0%}": results["accuracy"]["OmniByte"] >= REAL_TARGET,
        f"every text kind >= {REAL_TARGET:.0%}": all(ours[k] >= REAL_TARGET for k in text_kinds),
        "at least libmagic's accuracy on every kind": all(
            ours[k] >= results["per_kind"].get("libmagic", {}).get(k, 0.0) for k in kinds),
    }
    results["seconds"] = time.perf_counter() - started
    return results


def markdown_real(r: dict) -> str:
    tools = list(r["accuracy"])
    lines = [f"Seed {r['seed']}, up to {r['per_kind_cap']} files per kind, {r['machine']}: {r['files']} files of "
             f"{r['kinds']} kinds. Whole-file modality (the modality covering most bytes) against the truth from "
             "the extension (an animated GIF is video, as in OmniByte; for re-encoded text, how it was made).", "",
             "| tool | accuracy | ms per file |", "|---|---|---|"]
    lines += [f"| {t} | {r['accuracy'][t]:.1%} | {r['ms_per_file'][t]:.2f} |" for t in tools]
    lines += ["", f"OmniByte gives {r['text_files_one_segment']:.1%} of the text files exactly one segment.", "",
              "| kind | truth | files | " + " | ".join(tools) + " |", "|---" * (3 + len(tools)) + "|"]
    for k in sorted(r["counts"], key=lambda k: (r["truth"][k], k)):
        lines.append(f"| {k} | {r['truth'][k]} | {r['counts'][k]} | "
                     + " | ".join(f"{r['per_kind'][t][k]:.0%}" for t in tools) + " |")
    lines += ["", "Targets:", ""] + [f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in r["targets"].items()]
    lines += ["", f"Files any tool missed ({len(r['misses'])}):", "",
              "| kind | file | bytes | truth | " + " | ".join(tools) + " | OmniByte's segments |",
              "|---" * (5 + len(tools)) + "|"]
    for m in r["misses"]:
        lines.append(f"| {m['kind']} | `{m['path']}` | {m['bytes']:,} | {m['truth']} | "
                     + " | ".join(("**" + str(m[t]) + "**") if m[t] != m["truth"] else str(m[t]) for t in tools)
                     + f" | {'; '.join(m['omnibyte_segments'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-mb", type=int, default=10, help="size of the stream timed for MB/s")
    parser.add_argument("--no-windowed", action="store_true", help="skip the windowed libmagic/Magika baselines")
    parser.add_argument("--real", action="store_true", help="score files sampled from this machine instead")
    parser.add_argument("--per-kind", type=int, default=30, help="--real: files drawn per kind at most")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--md", type=Path, help="write the tables here as Markdown")
    args = parser.parse_args()
    if args.real:
        results = run_real(args.seed, args.per_kind)
        table = markdown_real(results)
    else:
        results = run(args.seed, args.speed_mb, not args.no_windowed)
        table = markdown(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.md:
        args.md.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
