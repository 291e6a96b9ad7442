"""Real material for the corpus: natural photos, instruments through a General MIDI soundfont,
and documents of the kinds people upload, each from permissively licensed installed packages.

Three corpus sources (opt-in, `corpus --sources photos,instruments,documents`; licences in DATA.md):

    photos       32x32 views of the natural photos bundled in scikit-image's and scikit-learn's
                 wheels: crops at many scales and positions, mirrored, small brightness and colour
                 changes
    instruments  melodies, chords, arpeggios, drum patterns and small ensembles composed here,
                 rendered by fluidsynth through Debian's MIT-licensed FluidR3 General MIDI soundfont
                 and cut into 0.5 s clips
    documents    READMEs (a wheel's METADATA body), Markdown, source code, JSON, CSV, HTML/XML and
                 config files from the installed Python packages whose licence is permissive

Some whole photos, instruments and projects never train (`HELD_OUT_*`): they make the real-world
yardstick (`build_yardstick`, committed under benchmarks/real/), which tells how the model does on
material whose source it has never seen, unlike the corpus's own held-out split.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from omnibyte.codecs import IMAGE_SIZE, SAMPLE_RATE, audio_to_wav, pixels_to_bmp
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

if TYPE_CHECKING:  # corpus.py imports this module to build its sources, so Document is imported late
    from omnibyte.training.corpus import Document

__all__ = ["HELD_OUT_PHOTOS", "HELD_OUT_PROGRAMS", "HELD_OUT_PROJECTS", "PHOTOS", "photo_paths", "photo_view",
           "photo_documents", "instrument_documents", "document_documents", "is_permissive", "build_yardstick"]

CLIP_SAMPLES = SAMPLE_RATE // 2  # the native sound: 0.5 s

# --- photos -------------------------------------------------------------------------------------

# name -> (package, file in its data folder, caption); every one's licence is in DATA.md
PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "an astronaut"),
    "brick": ("skimage", "data/brick.png", "a brick wall"),
    "camera": ("skimage", "data/camera.png", "a man with a camera"),
    "cell": ("skimage", "data/cell.png", "a cell under a microscope"),
    "chelsea": ("skimage", "data/chelsea.png", "a cat"),
    "clock": ("skimage", "data/clock_motion.png", "a clock"),
    "coffee": ("skimage", "data/coffee.png", "a cup of coffee"),
    "coins": ("skimage", "data/coins.png", "old coins"),
    "grass": ("skimage", "data/grass.png", "grass"),
    "gravel": ("skimage", "data/gravel.png", "gravel"),
    "hubble": ("skimage", "data/hubble_deep_field.jpg", "galaxies in deep space"),
    "ihc": ("skimage", "data/ihc.png", "stained tissue under a microscope"),
    "retina": ("skimage", "data/retina.jpg", "a human retina"),
    "rocket": ("skimage", "data/rocket.jpg", "a rocket on its launch pad"),
    "china": ("sklearn", "datasets/images/china.jpg", "a temple in China"),
    "flower": ("sklearn", "datasets/images/flower.jpg", "a flower"),
}
# whole photos that never train: the yardstick's photos (an animal, an object, a place, a person)
HELD_OUT_PHOTOS = ("chelsea", "coffee", "china", "camera")


def photo_paths() -> dict[str, Path]:
    """The photos whose package is installed, by name (a missing package is skipped)."""
    found = {}
    for name, (package, relative, _) in PHOTOS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / relative
        if path.is_file():
            found[name] = path
    return found


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def photo_view(pixels: np.ndarray, rng: np.random.Generator, whole: bool = False) -> np.ndarray:
    """One 32x32 RGB view of a photo: a square crop (the centre square when `whole`, else a random
    size from 32 pixels to the whole short side, log-uniform, at a random place), mirrored half the
    time, with brightness and per-channel gain changed by a few per cent.

    Crops of every size, not only the whole picture, since a 32x32 thumbnail of a photo and a
    close-up of its texture are both what an upload can shrink to."""
    height, width = pixels.shape[:2]
    short = min(height, width)
    if whole:
        side, top, left = short, (height - short) // 2, (width - short) // 2
    else:
        side = int(round(np.exp(rng.uniform(np.log(IMAGE_SIZE), np.log(short)))))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(pixels[top:top + side, left:left + side])
    small = np.asarray(crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0),
                       dtype=np.float32)
    if not whole:
        if rng.random() < 0.5:
            small = small[:, ::-1]
        small = small * rng.uniform(0.85, 1.15) * rng.uniform(0.96, 1.04, size=3)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def photo_documents(rng: np.random.Generator, views_per_photo: int) -> Iterator[Document]:
    """Views of every installed photo but the held-out ones; half captioned "a photo: ..."."""
    from omnibyte.training.corpus import Document
    for name, path in photo_paths().items():
        if name in HELD_OUT_PHOTOS:
            continue
        pixels = _load_rgb(path)
        for index in range(views_per_photo):
            bmp = pixels_to_bmp(photo_view(pixels, rng, whole=index == 0))
            parts: list[tuple[Modality | None, bytes]] = [(Modality.IMAGE, bmp)]
            if rng.random() < 0.5:
                parts.insert(0, (Modality.TEXT, f"a photo: {PHOTOS[name][2]}".encode()))
            # the item is the view: every photo has views on both sides of the corpus's own split,
            # while the held-out photos above are on neither
            yield Document("photos", f"{name}/{index}", parts)


# --- instruments ---------------------------------------------------------------------------------

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# General MIDI program families, eight programs each, for captions ("a strings instrument")
GM_FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "string ensemble", "brass",
               "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects")
# programs that never train: the yardstick's instruments (tenor sax, cello, flute, clean electric
# guitar, marimba, trumpet), one of each kind of sound people record
HELD_OUT_PROGRAMS = (66, 42, 73, 27, 12, 56)
# General MIDI drum kits in FluidR3 (programs on the drum channel); the jazz kit never trains
DRUM_KITS = (0, 8, 16, 24, 25, 40, 48)
HELD_OUT_KITS = (32,)
# playable programs: the sound-effect family (120-127: seashore, helicopter, gunshot) is not music
MUSIC_PROGRAMS = tuple(range(120))
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9),
          "blues": (0, 3, 5, 6, 7, 10)}


def _scale_notes(rng: np.random.Generator, low: int, high: int) -> list[int]:
    root = int(rng.integers(0, 12))
    steps = SCALES[str(rng.choice(list(SCALES)))]
    return [n for n in range(low, high) if (n - root) % 12 in steps]


def _compose_part(rng: np.random.Generator, seconds: float, program: int) -> list[tuple[float, float, int, int]]:
    """(start s, length s, note, velocity) for one instrument: phrases of melody, chords, arpeggios
    and held notes at a random tempo, with rests between them."""
    register = (28, 52) if program // 8 == 4 else (48, 84)  # basses play low
    notes_in_key = _scale_notes(rng, *register)
    beat = 60 / rng.uniform(70, 170)
    events, t = [], 0.0
    while t < seconds:
        kind = rng.choice(["melody", "chord", "arpeggio", "held"], p=[0.45, 0.2, 0.2, 0.15])
        velocity = int(rng.integers(50, 120))
        if kind == "melody":
            position = int(rng.integers(len(notes_in_key)))
            for _ in range(int(rng.integers(4, 12))):
                length = beat * float(rng.choice([0.25, 0.5, 0.5, 1, 1, 2]))
                events.append((t, length * 0.95, notes_in_key[position], velocity + int(rng.integers(-10, 10))))
                position = int(np.clip(position + rng.integers(-2, 3), 0, len(notes_in_key) - 1))
                t += length
        elif kind in ("chord", "arpeggio"):
            base = int(rng.integers(0, max(1, len(notes_in_key) - 5)))
            chord = [notes_in_key[base + i] for i in (0, 2, 4) if base + i < len(notes_in_key)]
            for _ in range(int(rng.integers(1, 4))):
                length = beat * float(rng.choice([1, 2, 4]))
                if kind == "chord":
                    events += [(t, length * 0.95, n, velocity) for n in chord]
                else:
                    step = length / (2 * len(chord))
                    events += [(t + i * step, step * 1.5, n, velocity) for i, n in enumerate(chord * 2)]
                t += length
        else:
            length = beat * float(rng.choice([2, 3, 4]))
            events.append((t, length, int(rng.choice(notes_in_key)), velocity))
            t += length
        t += beat * float(rng.choice([0, 0, 0.5, 1]))
    return events


def _compose_drums(rng: np.random.Generator, seconds: float) -> list[tuple[float, float, int, int]]:
    """A bar-based pattern of kick, snare, hi-hats, toms and cymbals, varied bar to bar."""
    step = 60 / rng.uniform(80, 180) / 4  # sixteenth notes
    kick = rng.random(16) < np.array([0.9, 0, 0.1, 0, 0.2, 0, 0.3, 0, 0.7, 0, 0.2, 0.1, 0.2, 0, 0.3, 0])
    snare = rng.random(16) < np.array([0, 0, 0, 0, 0.9, 0, 0, 0.1, 0, 0, 0, 0, 0.9, 0, 0.1, 0.2])
    hats = rng.random(16) < rng.uniform(0.3, 1.0)
    events, t, position = [], 0.0, 0
    while t < seconds:
        i = position % 16
        if kick[i]:
            events.append((t, step, 36, int(rng.integers(90, 127))))
        if snare[i]:
            events.append((t, step, int(rng.choice([38, 40])), int(rng.integers(80, 120))))
        if hats[i]:
            events.append((t, step, int(rng.choice([42, 42, 44, 46])), int(rng.integers(40, 100))))
        if i == 0 and rng.random() < 0.2:
            events.append((t, step, int(rng.choice([49, 51, 57])), 100))
        if i >= 12 and rng.random() < 0.15:
            events.append((t, step, int(rng.choice([41, 43, 45, 47, 48, 50])), 100))
        t += step
        position += 1
    return events


def _write_midi(path: Path, tracks: list[tuple[int, int, list[tuple[float, float, int, int]]]]) -> None:
    """tracks: (channel, program, events) -> a type-1 MIDI file (mido)."""
    import mido
    ticks = 480  # per beat, at mido's default 120 bpm: 960 ticks a second
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks)
    for channel, program, events in tracks:
        messages = []
        for start, length, note, velocity in events:
            velocity = int(np.clip(velocity, 1, 127))
            messages.append((round(start * 2 * ticks), 1, mido.Message("note_on", channel=channel, note=note,
                                                                         velocity=velocity)))
            messages.append((round((start + length) * 2 * ticks), 0, mido.Message("note_off", channel=channel,
                                                                                  note=note)))
        messages.sort(key=lambda m: (m[0], m[1]))  # a note ends before the next one at that tick starts
        # channel 10 (9 from zero) is fluidsynth's drum channel: there the program picks the kit
        track = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program)])
        last = 0
        for tick, _, message in messages:
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.save(str(path))


def render_midi(path: Path, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """A MIDI file -> mono float samples at the native rate, via the fluidsynth command."""
    import soundfile as sf
    wav = path.with_suffix(".wav")
    command = ["fluidsynth", "-ni", "-q", "-r", str(SAMPLE_RATE), "-g", "0.6", "-F", str(wav), "-T", "wav",
               "-O", "s16", str(soundfont), str(path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not wav.exists():
        raise OmniByteError(f"fluidsynth could not render {path.name}: {done.stderr.strip()[-200:]}")
    samples, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise OmniByteError(f"fluidsynth rendered at {rate} Hz, not {SAMPLE_RATE}")
    return samples.mean(axis=1)


def _clips(wave: np.ndarray, rng: np.random.Generator) -> Iterator[bytes]:
    """A rendered piece -> native 0.5 s clips, at the piece's own level (peak scaled to a random
    level, as recordings differ), skipping clips that are all but silent."""
    peak = float(np.abs(wave).max())
    if peak < 1e-4:
        return
    wave = wave / peak * rng.uniform(0.35, 0.95)
    for start in range(0, len(wave) - CLIP_SAMPLES + 1, CLIP_SAMPLES):
        clip = wave[start:start + CLIP_SAMPLES]
        if np.abs(clip).max() < 0.02:
            continue
        yield audio_to_wav(np.clip(np.round(clip * 127 + 128), 0, 255).astype(np.uint8))


def _pieces(rng: np.random.Generator, programs: tuple[int, ...], kits: tuple[int, ...],
            pieces: int, seconds: float, ensembles: int) -> Iterator[tuple[str, str, list]]:
    """(item, caption, tracks) for each piece: solos on every program and kit, then ensembles."""
    for program in programs:
        for number in range(pieces):
            yield (f"program-{program}/{number}", f"music: a {GM_FAMILIES[program // 8]} instrument",
                   [(0, program, _compose_part(rng, seconds, program))])
    for kit in kits:
        for number in range(pieces):
            yield f"kit-{kit}/{number}", "music: drums", [(9, kit, _compose_drums(rng, seconds))]
    for number in range(ensembles):
        chosen = rng.choice(programs, size=int(rng.integers(2, 4)), replace=False)
        tracks = [(channel, int(p), _compose_part(rng, seconds, int(p))) for channel, p in enumerate(chosen)]
        if kits and rng.random() < 0.6:
            tracks.append((9, int(rng.choice(kits)), _compose_drums(rng, seconds)))
        yield f"ensemble/{number}", "music: a band", tracks


def instrument_documents(rng: np.random.Generator, pieces: int, seconds: float = 12.0) -> Iterator[Document]:
    """Clips of pieces composed for every General MIDI program and drum kit but the held-out ones,
    half of them captioned with the instrument's family. Needs fluidsynth and the soundfont."""
    from omnibyte.training.corpus import Document
    if not shutil.which("fluidsynth") or not SOUNDFONT.exists() or importlib.util.find_spec("mido") is None:
        return
    programs = tuple(p for p in MUSIC_PROGRAMS if p not in HELD_OUT_PROGRAMS)
    with tempfile.TemporaryDirectory() as tmp:
        for item, caption, tracks in _pieces(rng, programs, DRUM_KITS, pieces, seconds, ensembles=pieces * 100):
            path = Path(tmp) / "piece.mid"
            _write_midi(path, tracks)
            for _, wav in enumerate(_clips(render_midi(path), rng)):
                parts: list[tuple[Modality | None, bytes]] = [(Modality.AUDIO, wav)]
                if rng.random() < 0.5:
                    parts.insert(0, (Modality.TEXT, caption.encode()))
                # the item is the piece: its clips are all on one side of the corpus's own split
                yield Document("instruments", item, parts)


# --- documents -----------------------------------------------------------------------------------

DOCUMENT_BYTES = 4000  # a document people upload is longer than a fortune: most of a context
DOCUMENT_SUFFIXES = {".md", ".rst", ".txt", ".py", ".pyi", ".json", ".csv", ".tsv", ".html", ".htm", ".xml",
                     ".toml", ".cfg", ".ini", ".yaml", ".yml", ".js", ".css", ".c", ".h", ".cpp", ".rs", ".sh"}
PERMISSIVE = re.compile(r"\b(MIT|BSD|Apache|ISC|PSF|Python Software Foundation|0BSD|Zlib|Unlicense|CC0|"
                        r"public domain|BSL-1\.0|HPND|MIT-CMU)\b", re.I)
COPYLEFT = re.compile(r"GPL|MPL|Mozilla|EPL|Eclipse|CDDL|copyleft|share-?alike|CC-BY-SA|EUPL|OSL|Artistic|"
                      r"Commons Clause|proprietary|UNKNOWN", re.I)
# projects that never train: the yardstick's documents (READMEs, Markdown docs, sources, JSON, CSV)
HELD_OUT_PROJECTS = ("gradio", "pydantic", "rich", "fastapi", "scikit-learn", "jsonschema-specifications")
PER_PROJECT_BYTES = 400_000  # so the few huge packages do not drown the many small ones


def _licence_text(dist: importlib.metadata.Distribution) -> str:
    meta = dist.metadata
    fields = [meta.get("License-Expression") or "", (meta.get("License") or "")[:200]]
    fields += [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " ".join(fields)


def is_permissive(licence: str) -> bool:
    """A licence statement that names a permissive licence and nothing copyleft or unclear."""
    return bool(PERMISSIVE.search(licence)) and not COPYLEFT.search(licence)


def _normalised_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _readable(data: bytes) -> str | None:
    """UTF-8 text that is not minified or generated: most lines short, few control bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines() or [""]
    if sum(len(line) > 300 for line in lines) > len(lines) / 20:
        return None
    if sum(ch < " " and ch not in "\t\n\r" for ch in text[:4000]) > 2:
        return None
    return text


def _document_pieces(text: str, limit: int = DOCUMENT_BYTES) -> Iterator[str]:
    """Whole lines up to `limit` UTF-8 bytes a piece (a longer line is cut)."""
    piece: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        encoded = len(line.encode())
        if piece and size + encoded > limit:
            yield "".join(piece)
            piece, size = [], 0
        while encoded > limit:
            cut = line.encode()[:limit].decode("utf-8", "ignore")
            yield cut
            line = line[len(cut):]
            encoded = len(line.encode())
        piece.append(line)
        size += encoded
    if piece and "".join(piece).strip():
        yield "".join(piece)


def project_files(dist: importlib.metadata.Distribution, rng: np.random.Generator) -> Iterator[tuple[str, str]]:
    """(name, text) of a project's README (its METADATA body) and a random share of its text files,
    at most PER_PROJECT_BYTES in all."""
    budget = PER_PROJECT_BYTES
    readme = dist.metadata.get_payload() or ""
    if isinstance(readme, str) and len(readme.strip()) > 200:
        kind = (dist.metadata.get("Description-Content-Type") or "").split(";")[0]
        suffix = {"text/markdown": ".md", "text/x-rst": ".rst"}.get(kind, ".txt")
        budget -= len(readme)
        yield f"README{suffix}", readme
    files = [f for f in dist.files or [] if Path(str(f)).suffix.lower() in DOCUMENT_SUFFIXES
             and ".dist-info" not in str(f)]
    for index in rng.permutation(len(files)):
        if budget <= 0:
            break
        path = Path(str(files[int(index)].locate()))
        try:
            if not path.is_file() or path.stat().st_size > 300_000 or path.stat().st_size < 200:
                continue
            text = _readable(path.read_bytes())
        except OSError:
            continue
        if text is None:
            continue
        budget -= len(text)
        yield str(files[int(index)]), text


def permissive_projects(held_out: bool) -> list[importlib.metadata.Distribution]:
    """Installed distributions with a permissive licence, one per name, sorted by name; the
    held-out projects when `held_out`, else every other one."""
    chosen = {}
    for dist in importlib.metadata.distributions():
        name = _normalised_name(dist.metadata.get("Name") or "")
        if not name or name in chosen or not is_permissive(_licence_text(dist)):
            continue
        if (name in HELD_OUT_PROJECTS) == held_out:
            chosen[name] = dist
    return [chosen[name] for name in sorted(chosen)]


def document_documents(rng: np.random.Generator) -> Iterator[Document]:
    """Pieces of every permissively licensed installed project's documents but the held-out ones,
    each distinct piece once."""
    from omnibyte.training.corpus import Document
    seen: set[bytes] = set()
    for dist in permissive_projects(held_out=False):
        project = _normalised_name(dist.metadata["Name"])
        for name, text in project_files(dist, rng):
            for _, piece in enumerate(_document_pieces(text)):
                digest = hashlib.sha256(piece.encode()).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                # the item is the file: its pieces stay on one side of the corpus's own split
                yield Document("documents", f"{project}/{name}", [(Modality.TEXT, piece.encode())])


# --- the real-world yardstick --------------------------------------------------------------------

_KINDS = {".md": "markup", ".rst": "markup", ".txt": "markup", ".json": "data", ".csv": "data", ".tsv": "data",
          ".html": "web", ".htm": "web", ".xml": "web", ".js": "web", ".css": "web", ".toml": "config",
          ".cfg": "config", ".ini": "config", ".yaml": "config", ".yml": "config"}


def _kind(name: str) -> str:
    """README, markup, data, web, config or code: what kind of document a file is."""
    if name.startswith("README"):
        return "readme"
    return _KINDS.get(Path(name).suffix.lower(), "code")


def _copy_licence(dist: importlib.metadata.Distribution, out: Path) -> None:
    """The project's licence files from its dist-info, which its licence asks to keep beside copies."""
    texts = [f"{dist.metadata['Name']} {dist.version}: {_licence_text(dist).strip()}\n"]
    for file in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", Path(str(file)).name, re.I) and ".dist-info" in str(file):
            path = Path(str(file.locate()))
            if path.is_file():
                texts.append(f"\n----- {file} -----\n" + path.read_text("utf-8", "replace"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(texts))


def build_yardstick(out_dir: str | Path, seed: int = 0, photo_views: int = 8, instrument_pieces: int = 2,
                    documents: int = 36) -> dict[str, int]:
    """Write the held-out real files as native files, `out_dir/{image,audio,text}/NNN.*`, plus
    `out_dir/continuation/` (the whole held-out photos, for the continuation check). Needs
    scikit-image, scikit-learn, fluidsynth with the soundfont, mido, and the held-out projects
    installed. Returns the file count per modality."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 20])
    counts = {}
    folder = out_dir / "image"
    folder.mkdir(parents=True, exist_ok=True)
    paths = photo_paths()
    missing = [name for name in HELD_OUT_PHOTOS if name not in paths]
    if missing:
        raise OmniByteError(f"held-out photos not installed: {', '.join(missing)} "
                            "(pip install scikit-image scikit-learn)")
    number = 0
    for name in HELD_OUT_PHOTOS:
        pixels = _load_rgb(paths[name])
        for index in range(photo_views):
            (folder / f"{number:03d}-{name}.bmp").write_bytes(pixels_to_bmp(photo_view(pixels, rng, whole=index == 0)))
            number += 1
    counts["image"] = number

    folder = out_dir / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    number = 0
    with tempfile.TemporaryDirectory() as tmp:
        for item, _, tracks in _pieces(rng, HELD_OUT_PROGRAMS, HELD_OUT_KITS, instrument_pieces, 6.0, ensembles=4):
            path = Path(tmp) / "piece.mid"
            _write_midi(path, tracks)
            clips = list(_clips(render_midi(path), rng))
            # two clips of each piece, from its middle: an upload starts anywhere in a recording
            for wav in clips[len(clips) // 3: len(clips) // 3 + 2]:
                (folder / f"{number:03d}-{item.replace('/', '-')}.wav").write_bytes(wav)
                number += 1
    counts["audio"] = number

    folder = out_dir / "text"
    folder.mkdir(parents=True, exist_ok=True)
    projects = permissive_projects(held_out=True)
    found = {_normalised_name(d.metadata["Name"]) for d in projects}
    if set(HELD_OUT_PROJECTS) - found:
        raise OmniByteError(f"held-out projects not installed: {', '.join(sorted(set(HELD_OUT_PROJECTS) - found))}")
    per_project = -(-documents // len(projects))
    number = 0
    for dist in projects:
        project = _normalised_name(dist.metadata["Name"])
        _copy_licence(dist, folder / "LICENSES" / f"{project}.txt")
        # the kinds a project has in turn, README first: the yardstick is documents of every kind
        # people upload, not mostly source code
        by_kind: dict[str, list[tuple[str, str]]] = {}
        for name, text in project_files(dist, rng):
            piece = next(_document_pieces(text), "")  # a file's beginning: what an upload starts with
            if len(piece.encode()) >= 1000:
                by_kind.setdefault(_kind(name), []).append((name, piece))
        chosen: list[tuple[str, str]] = []
        while len(chosen) < per_project and any(by_kind.values()):
            for kind in list(by_kind):
                if by_kind[kind] and len(chosen) < per_project:
                    chosen.append(by_kind[kind].pop(0))
        for name, piece in chosen:
            safe = re.sub(r"[^A-Za-z0-9.]+", "-", Path(name).name)
            (folder / f"{number:03d}-{project}-{safe}.txt").write_bytes(piece.encode())
            number += 1
    counts["text"] = number
    return counts
