"""The training corpus: documents in the native formats, from material installed on this machine.

Every document is `document_tokens(parts, end=True)`: DOC_START, each part as its modality tag
and its bytes, DOC_END. Sources (their licences are in DATA.md):

    text   Debian fortunes, the King James Bible (bible-kjv), Python's documentation sources
           (python3-doc), the Devil's Dictionary and the Jargon File (dict-devil, dict-jargon)
    image  captioned procedural shapes, Tango icons, Openclipart drawings
    audio  captioned tones, chords and melodies (numpy), words spoken by espeak-ng and flite
    video  captioned procedural moving shapes
    mixed  text around an image or a sound ("Here is a picture of ...", then the picture)

and, built only when named, the real material of real_material.py: natural photos, General MIDI
instruments rendered by fluidsynth, documents of permissively licensed installed packages.

The held-out split is chosen by a stable hash of each source item, so no item (a fortune file
section, a Bible chapter, an icon, a word, a shape/colour combination) is on both sides.
Output folder:

    train.tokens, val.tokens   packed uint16 token ids (omnibyte.training.train reads them)
    val/<modality>/NNNNN.*     every held-out item also as a native file, for evaluation
    val/captions.jsonl         caption-conditioned held-out items: file, caption, what it asks for
    manifest.json              seed, counts and bytes per source and split
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from omnibyte.codecs import (
    FRAME_COUNT,
    FRAME_SIZE,
    IMAGE_SIZE,
    SAMPLE_RATE,
    audio_to_wav,
    encode_audio,
    encode_image,
    frames_to_y4m,
    pixels_to_bmp,
)
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.training.real_material import document_documents, instrument_documents, photo_documents
from omnibyte.vocab import document_tokens

__all__ = ["Document", "build_corpus", "all_documents", "COLOURS", "SHAPES", "SOURCES", "VAL_SHARE"]

# one item in twenty is held out
VAL_SHARE = 20
TEXT_DOC_BYTES = 1500  # long enough for context, short enough to mix with other modalities

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 40),
    "white": (245, 245, 245), "black": (15, 15, 15), "orange": (245, 140, 20), "purple": (140, 50, 180),
}
SHAPES = ("circle", "square", "triangle", "stripes")
NOTE_NAMES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
SPOKEN_WORDS = ("yes", "no", "hello", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "stop", "go", "left", "right", "up", "down", "red", "blue", "green", "cat", "dog", "sun",
                "moon", "water", "fire", "tree", "house", "bird", "fish", "open", "close", "good", "bad", "zero",
                "start", "music", "sound", "light", "dark", "hot", "cold", "fast", "slow", "big", "small")


@dataclass
class Document:
    source: str
    item: str  # identifies the source item; the split is decided by it
    parts: list[tuple[Modality | None, bytes]]
    # for caption-conditioned evaluation: what the caption asks for
    asks: dict = field(default_factory=dict)

    @property
    def main_part(self) -> tuple[Modality, bytes]:
        """The part evaluation is about: the first non-text part, else the text."""
        for modality, data in self.parts:
            if modality is not None and modality is not Modality.TEXT:
                return modality, data
        return Modality.TEXT, b"".join(data for _, data in self.parts)

    @property
    def caption(self) -> str | None:
        """The text before the main part, when the document is a caption and one thing."""
        if len(self.parts) == 2 and self.parts[0][0] is Modality.TEXT and self.parts[1][0] is not Modality.TEXT:
            return self.parts[0][1].decode()
        return None

    @property
    def held_out(self) -> bool:
        digest = hashlib.sha256(f"{self.source}:{self.item}".encode()).digest()
        return int.from_bytes(digest[:4], "little") % VAL_SHARE == 0


# --- text ---------------------------------------------------------------------------------------

def _chunks(text: str, limit: int = TEXT_DOC_BYTES) -> Iterator[str]:
    """Paragraph-aligned pieces of at most `limit` UTF-8 bytes (a longer paragraph is cut)."""
    piece = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip("\n")
        if not paragraph.strip():
            continue
        candidate = f"{piece}\n\n{paragraph}" if piece else paragraph
        if len(candidate.encode()) <= limit:
            piece = candidate
            continue
        if piece:
            yield piece
        while len(paragraph.encode()) > limit:
            cut = paragraph.encode()[:limit].decode("utf-8", "ignore")
            yield cut
            paragraph = paragraph[len(cut):]
        piece = paragraph
    if piece:
        yield piece


def text_fortunes(root: Path = Path("/usr/share/games/fortunes")) -> Iterator[Document]:
    for path in sorted(p for p in root.glob("*") if p.is_file() and "." not in p.name):
        fortunes = [f.strip("\n") for f in path.read_text("utf-8", "replace").split("\n%\n") if f.strip()]
        for number, piece in enumerate(_chunks("\n\n".join(fortunes))):
            yield Document("fortunes", f"{path.name}/{number}", [(Modality.TEXT, piece.encode())])


def text_bible() -> Iterator[Document]:
    if not shutil.which("bible"):
        return
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    chapters: dict[str, list[str]] = {}
    for line in out.splitlines():
        match = re.match(r"(\w+?)(\d+):(\d+) (.*)", line)
        if match:
            chapters.setdefault(f"{match[1]}{match[2]}", []).append(f"{match[1]} {match[2]}:{match[3]} {match[4]}")
    for chapter, verses in chapters.items():
        for number, piece in enumerate(_chunks("\n".join(verses).replace("\n", "\n\n"))):
            yield Document("bible-kjv", f"{chapter}/{number}", [(Modality.TEXT, piece.replace("\n\n", "\n").encode())])


def text_python_docs(root: Path = Path("/usr/share/doc/python3-doc/html/_sources")) -> Iterator[Document]:
    for path in sorted(root.rglob("*.txt")):
        for number, piece in enumerate(_chunks(path.read_text("utf-8", "replace"))):
            yield Document("python-docs", f"{path.relative_to(root)}/{number}", [(Modality.TEXT, piece.encode())])


def text_dictionaries(root: Path = Path("/usr/share/dictd")) -> Iterator[Document]:
    for name in ("devil", "jargon"):
        path = root / f"{name}.dict.dz"
        if not path.exists():
            continue
        text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        for number, piece in enumerate(_chunks(text)):
            yield Document(f"dict-{name}", str(number), [(Modality.TEXT, piece.encode())])


# --- images ------------------------------------------------------------------------------------

def draw_shape(shape: str, colour: str, background: str, rng: np.random.Generator,
               on_bottom_edge: bool = False) -> np.ndarray:
    """A 32x32 RGB picture of `shape` in `colour` on `background`, drawn without anti-aliasing.

    Every shape pixel is exactly the caption's colour. The picture is stored bottom row first and
    every later shape pixel copies a neighbour, so the first shape pixel is the only place the
    caption's colour word is learned; an anti-aliased edge made that pixel a blend of shape and
    background, and the model never learned to read the word (docs/training-history.md).
    """
    im = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), COLOURS[background])
    draw = ImageDraw.Draw(im)
    half = int(rng.integers(7, 13))  # half-width of the shape
    cx, cy = (int(rng.integers(half, IMAGE_SIZE - half + 1)) for _ in range(2))
    if on_bottom_edge:  # the shape's lowest row is the picture's bottom row: the first one stored
        cy = IMAGE_SIZE - half
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half - 1, cy + half - 1), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half - 1, cy + half - 1), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half - 1), (cx + half - 1, cy + half - 1)], fill=fill)
    else:  # stripes: horizontal bands over the whole picture
        band = int(rng.integers(2, 5))
        for top in range(0, IMAGE_SIZE, 2 * band):
            draw.rectangle((0, top, IMAGE_SIZE, top + band - 1), fill=fill)
    return np.asarray(im)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def shape_caption(shape: str, colour: str, background: str) -> str:
    if shape == "stripes":
        return f"{colour} stripes on {_a(background)} background"
    return f"{_a(colour)} {shape} on {_a(background)} background"


def images_shapes(rng: np.random.Generator, count: int, on_bottom_edge: bool = False) -> Iterator[Document]:
    names = list(COLOURS)
    shapes = SHAPES[:-1] if on_bottom_edge else SHAPES  # stripes cover the whole picture anyway
    source = "shapes-low" if on_bottom_edge else "shapes"
    for index in range(count):
        shape = shapes[int(rng.integers(len(shapes)))]
        colour, background = rng.choice(names, size=2, replace=False)
        caption = shape_caption(shape, colour, background)
        bmp = pixels_to_bmp(draw_shape(shape, colour, background, rng, on_bottom_edge))
        # the item is the picture itself, so held-out pictures are new positions and sizes
        yield Document(source, f"{index}", [(Modality.TEXT, caption.encode()), (Modality.IMAGE, bmp)],
                       asks={"colour": str(colour), "background": str(background), "shape": shape})


def _image_files(paths: list[Path], source: str, caption_of, rng: np.random.Generator,
                 limit: int) -> Iterator[Document]:
    if len(paths) > limit:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), size=limit, replace=False))]
    for path in paths:
        try:
            bmp = encode_image(path.read_bytes()).data
        except OmniByteError:
            continue
        parts: list[tuple[Modality | None, bytes]] = [(Modality.IMAGE, bmp)]
        if rng.random() < 0.5:  # half captioned, half bare, so both are learned
            parts.insert(0, (Modality.TEXT, caption_of(path).encode()))
        yield Document(source, path.name, parts)


def _words(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip()


def images_icons(rng: np.random.Generator, limit: int,
                 root: Path = Path("/usr/share/icons/Tango/32x32")) -> Iterator[Document]:
    yield from _image_files(sorted(root.rglob("*.png")), "tango-icons", lambda p: f"an icon: {_words(p)}", rng, limit)


def images_clipart(rng: np.random.Generator, limit: int,
                   root: Path = Path("/usr/share/openclipart/png")) -> Iterator[Document]:
    yield from _image_files(sorted(root.rglob("*.png")), "openclipart", lambda p: f"a drawing: {_words(p)}", rng, limit)


# --- audio -------------------------------------------------------------------------------------

def _to_uint8(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wave * 127 + 128), 0, 255).astype(np.uint8)


def _note_hz(semitone_from_a4: float) -> float:
    return 440.0 * 2 ** (semitone_from_a4 / 12)


def tone(freqs: list[float], seconds: float = 0.5, timbre: str = "sine", amplitude: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for freq in freqs:
        phase = 2 * np.pi * freq * t
        if timbre == "sine":
            wave += np.sin(phase)
        elif timbre == "square":
            wave += np.sign(np.sin(phase)) * 0.6
        else:  # triangle
            wave += 2 / np.pi * np.arcsin(np.sin(phase))
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) * 50)  # 20 ms fade in and out: no clicks
    return wave / max(1, len(freqs)) * amplitude * envelope


def audio_tones(rng: np.random.Generator, count: int) -> Iterator[Document]:
    for index in range(count):
        kind = rng.choice(["tone", "chord", "melody", "noise"], p=[0.45, 0.2, 0.25, 0.1])
        timbre = str(rng.choice(["sine", "square", "triangle"]))
        asks: dict = {}
        if kind == "tone":
            hz = int(rng.choice([110, 220, 262, 330, 392, 440, 523, 660, 784, 880, 1000, 1200]))
            wave, caption, asks = tone([hz], timbre=timbre), f"a {hz} Hz {timbre} tone", {"hz": hz}
        elif kind == "chord":
            root = int(rng.integers(-12, 12))
            minor = bool(rng.random() < 0.5)
            wave = tone([_note_hz(root), _note_hz(root + (3 if minor else 4)), _note_hz(root + 7)], timbre=timbre)
            caption = f"a {NOTE_NAMES[root % 12]} {'minor' if minor else 'major'} chord"
        elif kind == "melody":
            rising = bool(rng.random() < 0.5)
            steps = np.sort(rng.choice(np.arange(-9, 10), size=4, replace=False))
            steps = steps if rising else steps[::-1]
            wave = np.concatenate([tone([_note_hz(s)], seconds=0.125, timbre=timbre) for s in steps])
            caption = f"a {'rising' if rising else 'falling'} melody of four notes"
        else:
            wave = rng.normal(0, 0.25, int(0.5 * SAMPLE_RATE)).clip(-1, 1)
            caption = "white noise"
        wav = audio_to_wav(_to_uint8(wave))
        yield Document("tones", str(index), [(Modality.TEXT, caption.encode()), (Modality.AUDIO, wav)], asks=asks)


def audio_speech() -> Iterator[Document]:
    """Each word spoken by espeak-ng (several voices and speeds) and by flite."""
    with tempfile.TemporaryDirectory() as tmp:
        for word in SPOKEN_WORDS:
            takes = []
            if shutil.which("espeak-ng"):
                for voice, speed in (("en-us", 160), ("en", 140), ("en-us+f3", 180), ("en+m3", 150)):
                    takes.append(["espeak-ng", "-v", voice, "-s", str(speed), "-w", f"{tmp}/w.wav", word])
            if shutil.which("flite"):
                takes.append(["flite", "-t", word, "-o", f"{tmp}/w.wav"])
            for _, command in enumerate(takes):
                if subprocess.run(command, capture_output=True).returncode != 0:
                    continue
                try:
                    wav = encode_audio((Path(tmp) / "w.wav").read_bytes()).data
                except OmniByteError:
                    continue
                caption = f'a spoken word: "{word}"'
                # the item is the word: a held-out word is never heard in training
                yield Document("speech", word,
                               [(Modality.TEXT, caption.encode()), (Modality.AUDIO, wav)])


# --- video -------------------------------------------------------------------------------------

DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def moving_shape(shape: str, direction: str, brightness: int, rng: np.random.Generator) -> np.ndarray:
    """(8, 16, 16) frames of a bright shape on a dark background moving one step per frame."""
    dx, dy = DIRECTIONS[direction]
    half = int(rng.integers(2, 4))
    speed = int(rng.integers(1, 3))
    frames = np.full((FRAME_COUNT, FRAME_SIZE, FRAME_SIZE), int(rng.integers(0, 40)), dtype=np.uint8)
    x0 = int(rng.integers(half, FRAME_SIZE - half))
    y0 = int(rng.integers(half, FRAME_SIZE - half))
    yy, xx = np.mgrid[:FRAME_SIZE, :FRAME_SIZE]
    for f in range(FRAME_COUNT):
        cx = (x0 + dx * speed * f) % FRAME_SIZE
        cy = (y0 + dy * speed * f) % FRAME_SIZE
        if shape == "circle":
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= half * half
        else:
            inside = (abs(xx - cx) <= half) & (abs(yy - cy) <= half)
        frames[f][inside] = brightness
    return frames


def video_shapes(rng: np.random.Generator, count: int) -> Iterator[Document]:
    for index in range(count):
        shape = str(rng.choice(["circle", "square"]))
        direction = str(rng.choice(list(DIRECTIONS)))
        bright = bool(rng.random() < 0.5)
        frames = moving_shape(shape, direction, 250 if bright else 150, rng)
        caption = f"a {'white' if bright else 'grey'} {shape} moving {direction}"
        yield Document("moving-shapes", str(index),
                       [(Modality.TEXT, caption.encode()), (Modality.VIDEO, frames_to_y4m(frames))],
                       asks={"direction": direction})


# --- mixed -------------------------------------------------------------------------------------

def mixed_documents(rng: np.random.Generator, count: int) -> Iterator[Document]:
    """Text around a picture or a sound, so the model learns to switch and to switch back."""
    names = list(COLOURS)
    for index in range(count):
        if rng.random() < 0.6:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour, background = rng.choice(names, size=2, replace=False)
            caption = shape_caption(shape, colour, background)
            parts = [(Modality.TEXT, f"Here is a picture of {caption}:".encode()),
                     (Modality.IMAGE, pixels_to_bmp(draw_shape(shape, colour, background, rng))),
                     (Modality.TEXT, f" That was {caption}.".encode())]
        else:
            hz = int(rng.choice([220, 330, 440, 550, 660, 880]))
            parts = [(Modality.TEXT, f"Listen to a {hz} Hz tone:".encode()),
                     (Modality.AUDIO, audio_to_wav(_to_uint8(tone([hz])))),
                     (Modality.TEXT, f" That was {hz} Hz.".encode())]
        yield Document("mixed", str(index), parts)


# --- assembling ----------------------------------------------------------------------------------

_SUFFIX = {Modality.TEXT: ".txt", Modality.IMAGE: ".bmp", Modality.AUDIO: ".wav", Modality.VIDEO: ".y4m"}


def all_documents(seed: int, scale: float = 1.0, sources: set[str] | None = None) -> Iterator[Document]:
    """Every document, source by source; `sources` picks some by name (default: all but the opt-in ones)."""
    rng = np.random.default_rng(seed)
    n = lambda count: max(1, int(count * scale))  # noqa: E731
    makers = {
        "fortunes": lambda: text_fortunes(),
        "bible-kjv": lambda: text_bible(),
        "python-docs": lambda: text_python_docs(),
        "dictionaries": lambda: text_dictionaries(),
        "shapes": lambda: images_shapes(rng, n(6000)),
        "tango-icons": lambda: images_icons(rng, n(850)),
        "openclipart": lambda: images_clipart(rng, n(2500)),
        "tones": lambda: audio_tones(rng, n(3000)),
        "speech": lambda: audio_speech(),
        "moving-shapes": lambda: video_shapes(rng, n(2500)),
        "mixed": lambda: mixed_documents(rng, n(1500)),
        # its own random stream, so asking for it leaves every other source's documents as they were
        "shapes-low": lambda: images_shapes(np.random.default_rng([seed, 1]), n(3000), on_bottom_edge=True),
        # real material (omnibyte/training/real_material.py), each on its own random stream
        "photos": lambda: photo_documents(np.random.default_rng([seed, 2]), n(600)),
        "instruments": lambda: instrument_documents(np.random.default_rng([seed, 3]), n(2)),
        "documents": lambda: document_documents(np.random.default_rng([seed, 4])),
    }
    for name in selected_sources(sources):
        yield from makers[name]()


def selected_sources(sources: set[str] | None) -> list[str]:
    """The sources a build makes, in build order: those named, or by default all but the opt-in ones."""
    known = SOURCES + OPT_IN_SOURCES
    unknown = set(sources or ()) - set(known)
    if unknown:
        raise OmniByteError(f"unknown corpus source(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return [name for name in known if (name in sources if sources is not None else name not in OPT_IN_SOURCES)]


SOURCES = ("fortunes", "bible-kjv", "python-docs", "dictionaries", "shapes", "tango-icons", "openclipart", "tones",
           "speech", "moving-shapes", "mixed")
# built only when asked for by name, so the default corpus (the one the corpus split's figures are
# taken on) stays as it was: a teaching aid for reading the caption's colour word, and the real
# material, which trains through `train --mix`
OPT_IN_SOURCES = ("shapes-low", "photos", "instruments", "documents")


# share of caption-then-one-thing documents written without their caption: without bare ones the
# model never sees a sound or a video start right after DOC_START, and an unconditional sample
# (DOC_START, then the tag) is a context it has never met
BARE_SHARE = 0.3


def build_corpus(out_dir: str | Path, seed: int = 0, scale: float = 1.0, text_share: float = 1.0,
                 sources: set[str] | None = None, bare_share: float = BARE_SHARE) -> dict:
    """Write the corpus (see the module docstring); returns the manifest.

    `scale` multiplies the procedural and image counts, `text_share` keeps that share of text
    documents, `sources` picks sources by name (all three for small test corpora) and
    `bare_share` is the share of captioned documents whose caption is dropped.
    """
    out_dir = Path(out_dir)
    (out_dir / "val").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    splits: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    stats: Counter = Counter()
    captions = []
    bare_rng = np.random.default_rng(seed + 2)  # its own stream: the other choices stay as they were
    for doc in all_documents(seed, scale, sources):
        if doc.parts[0][0] is Modality.TEXT and len(doc.parts) == 1 and rng.random() >= text_share:
            continue
        if doc.caption is not None and bare_rng.random() < bare_share:
            doc = Document(doc.source, doc.item, doc.parts[1:], doc.asks)
            stats[f"bare/{doc.source}/documents"] += 1
        split = "val" if doc.held_out else "train"
        tokens = np.asarray(document_tokens(doc.parts, end=True), dtype=np.uint16)
        splits[split].append(tokens)
        stats[f"{split}/{doc.source}/documents"] += 1
        stats[f"{split}/{doc.source}/tokens"] += len(tokens)
        if split == "val":
            modality, payload = doc.main_part
            folder = out_dir / "val" / modality.value
            folder.mkdir(exist_ok=True)
            path = folder / f"{stats['val/files']:05d}{_SUFFIX[modality]}"
            stats["val/files"] += 1
            path.write_bytes(payload)
            if doc.caption is not None:
                captions.append({"file": str(path.relative_to(out_dir)), "source": doc.source,
                                 "caption": doc.caption, "modality": modality.value, "asks": doc.asks})
    for split, docs in splits.items():
        order = rng.permutation(len(docs))
        packed = np.concatenate([docs[i] for i in order]) if docs else np.zeros(0, np.uint16)
        packed.astype("<u2").tofile(out_dir / f"{split}.tokens")
        stats[f"{split}/total_tokens"] = int(len(packed))
    with (out_dir / "val" / "captions.jsonl").open("w") as f:
        for row in captions:
            f.write(json.dumps(row) + "\n")
    manifest = {"seed": seed, "scale": scale, "text_share": text_share, "bare_share": bare_share,
                "val_share": f"1/{VAL_SHARE}",
                "sources": sorted(sources) if sources else list(SOURCES),
                "counts": dict(sorted(stats.items()))}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
