"""The real-file set of `benchmarks/detect.py --real`: files sampled from this machine's own
installed files, each labelled by its extension (or the package it sits in), plus text from the
machine's translation catalogues re-encoded in UTF-16 and legacy encodings.

Where the files come from: Python's standard libraries and site-packages, /usr/share (documentation,
icons, fonts, locale, man pages, Vim's help), /usr/lib, /usr/include and /etc. The walk is sorted
and the sample drawn from a seeded generator, so one machine gives the same set every run; a file
installed more than once (each Python's copy of its test data) is drawn once.

Re-encoded text: the translated messages of the machine's gettext catalogues (`.mo` files) for
Russian, Japanese, Chinese, German and French, joined into documents (some as XML pages that
declare their encoding) and written in UTF-16 with and without a byte-order mark, Latin-1,
Windows-1252, Shift-JIS, Big5 and KOI8-R.
"""

from __future__ import annotations

import gettext
import hashlib
import io
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MAX_BYTES = 4 << 20  # larger files are left out: the set is about kinds, not sizes
PER_KIND = 30  # files drawn per kind at most

# kind -> (truth modality, file name suffixes); a name matches the first kind listing its suffix
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # text
    "python": ("text", (".py",)),
    "python stub": ("text", (".pyi",)),
    "markdown": ("text", (".md",)),
    "restructuredtext": ("text", (".rst",)),
    "plain text": ("text", (".txt",)),
    "html": ("text", (".html", ".htm")),
    "xml": ("text", (".xml",)),
    "json": ("text", (".json",)),
    "csv": ("text", (".csv", ".tsv")),
    "svg": ("text", (".svg",)),
    "css": ("text", (".css",)),
    "javascript": ("text", (".js",)),
    "c header": ("text", (".h", ".hpp")),
    "c source": ("text", (".c", ".cc", ".cpp")),
    "shell": ("text", (".sh",)),
    "config": ("text", (".conf", ".cfg", ".ini")),
    "yaml": ("text", (".yaml", ".yml")),
    "toml": ("text", (".toml",)),
    "perl": ("text", (".pl", ".pm")),
    "cmake": ("text", (".cmake",)),
    "tcl": ("text", (".tcl",)),
    "pem": ("text", (".pem",)),
    "man page source": ("text", (".1", ".3", ".5", ".7", ".8")),
    # pictures, sound, film
    "png": ("image", (".png",)),
    "jpeg": ("image", (".jpg", ".jpeg")),
    "gif": ("image", (".gif",)),
    "ico": ("image", (".ico",)),
    "bmp": ("image", (".bmp",)),
    "tiff": ("image", (".tif", ".tiff")),
    "webp": ("image", (".webp",)),
    "wav": ("audio", (".wav",)),
    "mp3": ("audio", (".mp3",)),
    "mp4": ("video", (".mp4",)),
    # binaries
    "pyc": ("binary", (".pyc",)),
    "shared object": ("binary", (".so",)),
    "static library": ("binary", (".a",)),
    "object file": ("binary", (".o",)),
    "gzip": ("binary", (".gz",)),
    "zip": ("binary", (".zip", ".npz")),
    "wheel": ("binary", (".whl",)),
    "jar": ("binary", (".jar",)),
    "gettext catalogue": ("binary", (".mo",)),
    "truetype font": ("binary", (".ttf", ".otf")),
    "woff font": ("binary", (".woff", ".woff2")),
    "database": ("binary", (".db", ".sqlite", ".sqlite3")),
    "xz": ("binary", (".xz",)),
    "bzip2": ("binary", (".bz2",)),
    "numpy array": ("binary", (".npy",)),
    "pickle": ("binary", (".pickle", ".pkl")),
    "debian package": ("binary", (".deb",)),
    "tar": ("binary", (".tar",)),
    "windows executable": ("binary", (".exe",)),
    "gobject typelib": ("binary", (".typelib",)),
    "pdf": ("binary", (".pdf",)),
}

_SUFFIX_KIND = {suffix: kind for kind, (_, suffixes) in KINDS.items() for suffix in suffixes}

# re-encoded text: kind -> (Python codec, catalogue languages, byte-order mark)
ENCODED: dict[str, tuple[str, tuple[str, ...], bytes]] = {
    "utf-16 with BOM": ("utf-16-le", ("ru", "ja", "de", "zh_TW"), b"\xff\xfe"),
    "utf-16 without BOM": ("utf-16-le", ("ru", "ja", "de", "zh_TW"), b""),
    "utf-16be without BOM": ("utf-16-be", ("ru", "fr", "ja"), b""),
    "latin-1": ("latin-1", ("de", "fr", "es"), b""),
    "windows-1252": ("cp1252", ("fr", "de", "es"), b""),
    "shift-jis": ("shift_jis", ("ja",), b""),
    "big5": ("big5", ("zh_TW", "zh_HK"), b""),
    "koi8-r": ("koi8_r", ("ru",), b""),
}


@dataclass(frozen=True)
class RealFile:
    kind: str
    modality: str  # the truth: text, image, audio, video or binary
    path: str  # where it came from (for re-encoded text, the catalogue and the encoding)
    data: bytes


def _roots() -> list[Path]:
    roots = {Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")}
    pyenv = Path(sys.prefix).parent  # every installed Python beside this one, when there are several
    if pyenv.name == "versions":
        roots.add(pyenv)
    roots |= {Path(p) for p in ("/usr/share", "/usr/lib", "/usr/include", "/etc", "/usr/local")}
    ordered = sorted(r for r in roots if r.is_dir())
    # a root inside another is walked as part of it
    return [r for r in ordered if not any(o != r and o in r.parents for o in ordered)]


def _candidates() -> dict[str, list[str]]:
    """Every regular file of a known kind under the roots, by kind, sorted."""
    by_kind: dict[str, set[str]] = {k: set() for k in KINDS}
    for root in _roots():
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in files:
                suffix = os.path.splitext(name)[1].lower()
                kind = _SUFFIX_KIND.get(suffix)
                if kind is None:
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if st.st_mode & 0o170000 == 0o100000 and 0 < st.st_size <= MAX_BYTES:
                    by_kind[kind].add(path)
    return {k: sorted(v) for k, v in by_kind.items()}


def _excluded(kind: str, data: bytes) -> bool:
    """Files whose extension does not say what they are: a `.db` that is a text index, a
    `.txt` or man page that is not text at all (a test fixture of random bytes)."""
    if kind == "database":
        return _is_utf8(data)
    if KINDS[kind][0] == "text":
        return b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff"))
    return False


def _truth(kind: str, data: bytes) -> str:
    """The modality a file's kind says, but for an animated GIF: video, as everywhere in OmniByte
    (the demo turns one into Y4M frames)."""
    if kind == "gif":
        try:
            with Image.open(io.BytesIO(data)) as im:
                if getattr(im, "n_frames", 1) > 1:
                    return "video"
        except Exception:
            pass
    return KINDS[kind][0]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def sample_files(seed: int, per_kind: int = PER_KIND) -> list[RealFile]:
    rng = np.random.default_rng(seed)
    out: list[RealFile] = []
    seen: set[bytes] = set()  # one copy of a file installed several times (each Python's test data)
    for kind, paths in _candidates().items():
        order = rng.permutation(len(paths))
        taken = 0
        for i in order:
            if taken >= per_kind:
                break
            try:
                data = Path(paths[i]).read_bytes()
            except OSError:
                continue
            digest = hashlib.sha1(data).digest()
            if not data or _excluded(kind, data) or digest in seen:
                continue
            seen.add(digest)
            out.append(RealFile(kind, _truth(kind, data), paths[i], data))
            taken += 1
    return out + encoded_texts(seed, per_kind)


def _messages(language: str) -> list[str]:
    """The translated messages of every catalogue for `language`, sorted."""
    folder = Path("/usr/share/locale") / language / "LC_MESSAGES"
    out: set[str] = set()
    for mo in sorted(folder.glob("*.mo")) if folder.is_dir() else []:
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except Exception:
            continue
        out |= {v for k, v in catalog.items() if k and isinstance(v, str) and len(v) >= 12}
    return sorted(out)


def encoded_texts(seed: int, per_kind: int = PER_KIND) -> list[RealFile]:
    """Documents of translated messages in each encoding of ENCODED, a third of them as XML
    pages that declare the encoding."""
    rng = np.random.default_rng(seed + 1)
    cache: dict[str, list[str]] = {}
    out: list[RealFile] = []
    for kind, (codec, languages, bom) in ENCODED.items():
        for k in range(per_kind):
            language = languages[k % len(languages)]
            messages = cache.setdefault(language, _messages(language))
            if not messages:
                continue
            target = int(rng.integers(300, 20_000))
            lines, size = [], 0
            while size < target:
                m = messages[int(rng.integers(len(messages)))]
                try:
                    m.encode(codec)  # a message the encoding cannot write is skipped
                except UnicodeEncodeError:
                    continue
                lines.append(m)
                size += len(m.encode(codec))
            if k % 3 == 2:
                name = codec.replace("_", "-").upper().removesuffix("-LE").removesuffix("-BE")
                body = "\n".join(f"  <message id=\"{i}\">{_xml_escape(m)}</message>" for i, m in enumerate(lines))
                text = f'<?xml version="1.0" encoding="{name}"?>\n<catalogue lang="{language}">\n{body}\n</catalogue>\n'
            else:
                text = "\n\n".join(lines) + "\n"
            out.append(RealFile(kind, "text", f"{language} messages as {kind}{' (xml)' if k % 3 == 2 else ''} #{k}",
                                bom + text.encode(codec)))
    return out


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
