import dataclasses
import gzip
import io
import json
import pickle
import sqlite3
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from omnibyte.detector import ModalityDetector, Segment, detect_files_json, format_detections
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

DETECTOR = ModalityDetector(use_libmagic=False)
RNG = np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------
# material, made here


def picture(w: int = 32, h: int = 24) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 4 % 256], -1).astype(np.uint8)


def pillow(fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, format=fmt, **options)
    return buf.getvalue()


def tone(n: int = 4000, rate: int = 8000) -> np.ndarray:
    t = np.arange(n) / rate
    return 0.6 * np.sin(2 * np.pi * 440 * t) * np.minimum(1, np.arange(n)[::-1] / 200)


def pcm_u8(n: int = 4000) -> bytes:
    return np.round(tone(n) * 127 + 128).astype(np.uint8).tobytes()


def soundfile(fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(6000), 8000, format=fmt, subtype=subtype)
    return buf.getvalue()


def native_bmp() -> bytes:
    header = struct.pack("<2sIHHIIiiHHIIiiII", b"BM", 3126, 0, 0, 54, 40, 32, 32, 1, 24, 0, 3072, 2835, 2835, 0, 0)
    return header + picture(32, 32)[::-1, :, ::-1].tobytes()


def native_wav() -> bytes:
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 4036, b"WAVE", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8,
                         b"data", 4000)
    return header + pcm_u8()


def native_y4m() -> bytes:
    frames = [picture(16, 16)[:, :, 0] // 2 + 8 * i for i in range(8)]
    return (b"YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono\n"
            + b"".join(b"FRAME\n" + f.astype(np.uint8).tobytes() for f in frames))


def animated_gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(np.roll(picture(), 3 * i, axis=1)).convert("P") for i in range(4)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4() -> bytes:
    hdlr = box(b"hdlr", bytes(8) + b"vide" + bytes(12) + b"VideoHandler\x00")
    return (box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + box(b"moov", box(b"trak", hdlr))
            + box(b"mdat", RNG.bytes(900)))


def webm() -> bytes:
    ebml = b"\x1aE\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm" \
           b"\x42\x87\x81\x02\x42\x85\x81\x02"
    tracks = b"\x16\x54\xae\x6b" + bytes([0x80 | 12]) + b"\xae\x8a\x86\x85V_VP8\x83\x81\x01"
    cluster_body = RNG.bytes(700)
    cluster = b"\x1f\x43\xb6\x75" + bytes([0x40 | (len(cluster_body) >> 8), len(cluster_body) & 0xFF]) + cluster_body
    segment = tracks + cluster
    return ebml + b"\x18\x53\x80\x67" + bytes([0x40 | (len(segment) >> 8), len(segment) & 0xFF]) + segment


def riff_chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


def avi() -> bytes:
    hdrl = riff_chunk(b"LIST", b"hdrl" + riff_chunk(b"avih", bytes(56)))
    movi = riff_chunk(b"LIST", b"movi" + riff_chunk(b"00dc", RNG.bytes(801)))
    body = b"AVI " + hdrl + movi + riff_chunk(b"idx1", bytes(16))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf() -> bytes:
    body = b"1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    return b"%PDF-1.4\n" + body + b"xref\n0 1\ntrailer\n<< /Root 1 0 R >>\nstartxref\n9\n%%EOF\n"


def sqlite_db() -> bytes:
    con = sqlite3.connect(":memory:")
    con.execute("create table t (a text)")
    con.executemany("insert into t values (?)", [(f"row {i}",) for i in range(200)])
    con.commit()
    return con.serialize()


def zip_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", "hello " * 400)
        z.writestr("b.bin", RNG.bytes(300))
    return buf.getvalue()


def elf() -> bytes:
    # a real shared object of the running Python (a venv's own stdlib paths hold none)
    import _ctypes

    return Path(_ctypes.__file__).read_bytes()


TEXT = ("The quick brown fox jumps over the lazy dog. Съешь же ещё этих мягких булок. "
        "我们在这里讨论字节。 العربية لغة جميلة. 🎉 naïve café.\n").encode() * 6

# format -> (bytes, modality)
FILES = {
    "bmp": (native_bmp(), Modality.IMAGE),
    "png": (pillow("PNG"), Modality.IMAGE),
    "jpeg": (pillow("JPEG", quality=80), Modality.IMAGE),
    "gif": (pillow("GIF"), Modality.IMAGE),
    "tiff": (pillow("TIFF"), Modality.IMAGE),
    "webp": (pillow("WEBP"), Modality.IMAGE),
    "ppm": (pillow("PPM"), Modality.IMAGE),
    "wav": (native_wav(), Modality.AUDIO),
    "aiff": (soundfile("AIFF", "PCM_16"), Modality.AUDIO),
    "au": (soundfile("AU", "PCM_16"), Modality.AUDIO),
    "flac": (soundfile("FLAC", "PCM_16"), Modality.AUDIO),
    "ogg": (soundfile("OGG", "VORBIS"), Modality.AUDIO),
    "mp3": (soundfile("MP3", "MPEG_LAYER_III"), Modality.AUDIO),
    "y4m": (native_y4m(), Modality.VIDEO),
    "avi": (avi(), Modality.VIDEO),
    "mp4": (mp4(), Modality.VIDEO),
    "webm": (webm(), Modality.VIDEO),
    "utf-8": (TEXT, Modality.TEXT),
    "json": (json.dumps({"a": [1, 2.5, "ü"], "b": {"c": None}}, indent=2).encode(), Modality.TEXT),
    "elf": (elf(), Modality.BINARY),
    "zip": (zip_archive(), Modality.BINARY),
    "gzip": (gzip.compress(TEXT * 4, mtime=0), Modality.BINARY),
    "pdf": (pdf(), Modality.BINARY),
    "sqlite": (sqlite_db(), Modality.BINARY),
}
SIGNED = [f for f in FILES if f not in ("utf-8", "json")]


def assert_covers(segments: list[Segment], data: bytes) -> None:
    assert (segments == []) == (len(data) == 0)
    pos = 0
    for s in segments:
        assert s.start == pos and s.end > s.start
        assert 0.0 <= s.confidence <= 1.0
        assert isinstance(s.modality, Modality) and s.format and s.reason
        assert not s.reason.startswith("detector error"), s.reason
        pos = s.end
    assert pos == len(data)


def largest(segments: list[Segment]) -> Segment:
    return max(segments, key=lambda s: s.size)


# ---------------------------------------------------------------------------------------------
# the API


def test_empty_input_gives_no_segments():
    assert DETECTOR.detect_bytes(b"") == []


@pytest.mark.parametrize("data", [b"a", b"\x00", b"\xff", b"\n"])
def test_one_byte_gives_one_segment_covering_it(data):
    segments = DETECTOR.detect_bytes(data)
    assert_covers(segments, data)
    assert len(segments) == 1


def test_segment_is_frozen_and_serialises_to_the_cli_shape():
    segment = DETECTOR.detect_bytes(TEXT)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        segment.start = 3  # type: ignore[misc]
    assert segment.to_dict() == {"start": 0, "end": len(TEXT), "modality": "text", "format": "utf-8",
                                 "confidence": segment.confidence, "encoding": "utf-8"}


def test_detect_path_reads_the_file(tmp_path):
    path = tmp_path / "x.bmp"
    path.write_bytes(native_bmp())
    assert [s.format for s in DETECTOR.detect_path(path)] == ["bmp"]


def test_detect_path_refuses_a_missing_file_with_an_omnibyte_error(tmp_path):
    with pytest.raises(OmniByteError, match="not found"):
        DETECTOR.detect_path(tmp_path / "missing")


def test_importing_the_detector_does_not_import_torch():
    code = "import sys, omnibyte.detector; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0


# ---------------------------------------------------------------------------------------------
# formats


@pytest.mark.parametrize("fmt", FILES)
def test_each_format_is_one_segment_with_its_modality(fmt):
    data, modality = FILES[fmt]
    segments = DETECTOR.detect_bytes(data)
    assert_covers(segments, data)
    assert [(s.modality, s.format) for s in segments] == [(modality, fmt)]


def test_an_animated_gif_is_video():
    [segment] = DETECTOR.detect_bytes(animated_gif())
    assert (segment.modality, segment.format) == (Modality.VIDEO, "gif")


@pytest.mark.parametrize("fmt", SIGNED)
def test_signatures_are_found_at_any_offset_with_their_declared_end(fmt):
    data, modality = FILES[fmt]
    head, tail = b"Some words before the file. " * 3, b" and some words after it, to close." * 3
    segments = DETECTOR.detect_bytes(head + data + tail)
    assert [(s.start, s.end) for s in segments] == [(0, len(head)), (len(head), len(head) + len(data)),
                                                    (len(head) + len(data), len(head + data + tail))]
    assert [s.modality for s in segments] == [Modality.TEXT, modality, Modality.TEXT]


def test_native_formats_back_to_back_are_split_exactly():
    parts = [TEXT, native_bmp(), native_wav(), native_y4m(), native_bmp()]
    segments = DETECTOR.detect_bytes(b"".join(parts))
    assert [s.start for s in segments] == list(np.cumsum([0] + [len(p) for p in parts[:-1]]))
    assert [s.format for s in segments] == ["utf-8", "bmp", "wav", "y4m", "bmp"]


# ---------------------------------------------------------------------------------------------
# damage, as a byte model makes it


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]


def put(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


@pytest.mark.parametrize("fmt", SIGNED)
def test_a_flipped_magic_byte_still_classifies_with_lower_confidence(fmt):
    data, modality = FILES[fmt]
    at = 5 if fmt == "mp4" else 1 if fmt not in ("jpeg", "mp3") else 0
    segments = DETECTOR.detect_bytes(flip(data, at))
    assert_covers(segments, data)
    top = largest(segments)
    assert top.modality is modality
    assert top.confidence < DETECTOR.detect_bytes(data)[0].confidence or top.format != fmt


@pytest.mark.parametrize("fmt", SIGNED)
def test_data_cut_short_still_classifies(fmt):
    data, modality = FILES[fmt]
    cut = data[: len(data) // 2]
    segments = DETECTOR.detect_bytes(cut)
    assert_covers(segments, cut)
    assert largest(segments).modality is modality


@pytest.mark.parametrize("fmt, offset, fmt_struct", [
    ("bmp", 2, "<I"), ("wav", 4, "<I"), ("wav", 40, "<I"), ("aiff", 4, ">I"), ("au", 8, ">I"), ("png", 33, ">I"),
    ("jpeg", 4, ">H"), ("mp4", 0, ">I"), ("sqlite", 28, ">I"), ("elf", 40, "<I"), ("tiff", 4, "<I"),
])
def test_a_wrong_size_field_still_classifies(fmt, offset, fmt_struct):
    data, modality = FILES[fmt]
    bad = put(data, offset, struct.pack(fmt_struct, 0xFFFF if fmt_struct == ">H" else 0x7FFFFF01))
    segments = DETECTOR.detect_bytes(bad)
    assert_covers(segments, bad)
    assert largest(segments).modality is modality


@pytest.mark.parametrize("fmt, magic", [("wav", b"WAVE"), ("aiff", b"AIFF")])
def test_a_damaged_form_type_of_riff_and_iff_still_classifies(fmt, magic):
    data, modality = FILES[fmt]
    at = data.index(magic)
    bad = put(data, at, bytes([magic[0] ^ 0x20]))
    [segment] = DETECTOR.detect_bytes(bad)
    assert (segment.modality, segment.format, segment.end) == (modality, fmt, len(data))


@pytest.mark.parametrize("depth_byte", [0x5A, 0xFF])
def test_a_damaged_bmp_depth_is_read_from_the_file_size_field(depth_byte):
    # as a model's generated header can have it: the caption's boundary stays where the BMP starts
    caption = b"a blue square on a red background"
    bmp = put(native_bmp(), 28, bytes([depth_byte]))
    text, image = DETECTOR.detect_bytes(caption + bmp)
    assert ((text.end, image.start, image.end, image.format)
            == (len(caption), len(caption), len(caption) + len(bmp), "bmp"))
    assert "bad bits per pixel" in image.reason and image.confidence < 0.95


def test_a_size_field_running_past_the_data_is_not_trusted():
    bmp = put(native_bmp(), 2, struct.pack("<I", 10**9))
    segments = DETECTOR.detect_bytes(bmp)
    assert [(s.format, s.end) for s in segments] == [("bmp", len(bmp))]
    assert segments[0].confidence < 0.95


def test_a_size_field_running_over_text_is_cut_where_the_text_starts():
    bmp = native_bmp()[:2000]  # cut short: its header still claims 3,126 bytes
    segments = DETECTOR.detect_bytes(bmp + TEXT)
    assert [s.modality for s in segments] == [Modality.IMAGE, Modality.TEXT]
    assert abs(segments[1].start - 2000) <= 16  # the last pixels may be printable too
    assert "text" in segments[0].reason


def test_a_size_field_running_over_another_file_is_cut_where_it_starts():
    wav = native_wav()[:3000]
    segments = DETECTOR.detect_bytes(wav + native_bmp())
    assert [(s.start, s.format) for s in segments] == [(0, "wav"), (3000, "bmp")]


def test_a_y4m_header_with_wrong_dimensions_is_measured_by_its_frame_markers():
    y4m = native_y4m().replace(b"W16 H16", b"W61 H16")
    segments = DETECTOR.detect_bytes(y4m + TEXT)
    assert [(s.start, s.format) for s in segments] == [(0, "y4m"), (len(y4m), "utf-8")]


def test_noise_in_the_header_still_classifies():
    for fmt in ("bmp", "wav", "y4m", "png", "gif"):
        data, modality = FILES[fmt]
        noisy = flip(flip(data, 9), 23)
        assert largest(DETECTOR.detect_bytes(noisy)).modality is modality, fmt


def test_a_stray_byte_inside_text_keeps_one_text_segment():
    text = TEXT[:200] + b"\xff" + TEXT[200:]
    assert [s.modality for s in DETECTOR.detect_bytes(text)] == [Modality.TEXT]


# ---------------------------------------------------------------------------------------------
# text and headerless content


@pytest.mark.parametrize("text", ["我们在这里讨论字节级别的变换器模型，它可以同时处理文本。" * 3,
                                  "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 2,
                                  "def f(x):\n    return {'a': [x, 2, 3]}\n" * 5,
                                  "<html><body><p>hi there</p></body></html>\n" * 4])
def test_text_in_any_script_or_code_or_markup_is_text(text):
    [segment] = DETECTOR.detect_bytes(text.encode())
    assert segment.modality is Modality.TEXT


def test_json_is_named_json():
    assert DETECTOR.detect_bytes(FILES["json"][0])[0].format == "json"


def test_headerless_8bit_pcm_is_audio():
    [segment] = DETECTOR.detect_bytes(pcm_u8(6000))
    assert (segment.modality, segment.format) == (Modality.AUDIO, "pcm")


def test_headerless_rgb_pixels_are_an_image():
    [segment] = DETECTOR.detect_bytes(picture(64, 48).tobytes())
    assert (segment.modality, segment.format) == (Modality.IMAGE, "pixels")


def test_rows_of_pixels_without_an_interleave_cue_are_an_image():
    # every row is the one above plus a little noise, while bytes along a row are unrelated:
    # only the row length (a lag of 48 bytes) shows that these are pixels
    rng = np.random.default_rng(3)
    rows = np.cumsum(np.concatenate([rng.integers(0, 256, (1, 48)), rng.integers(-3, 4, (59, 48))]), axis=0)
    [segment] = DETECTOR.detect_bytes((rows % 256).astype(np.uint8).tobytes())
    assert (segment.modality, segment.format) == (Modality.IMAGE, "pixels")
    assert "rows of 48 bytes" in segment.reason


def test_a_flat_area_of_pixels_that_spells_valid_utf8_is_not_text():
    # the colour (0xCD, 0x89, 0x2B) reads as "\u0349+" over and over: a fill, not writing
    image = picture(64, 48).copy()
    image[10:40, 20:60] = (0xCD, 0x89, 0x2B)
    segments = DETECTOR.detect_bytes(image.tobytes())
    assert all(s.modality is Modality.IMAGE for s in segments), segments


def test_zeros_and_random_bytes_are_binary():
    noise = np.random.default_rng(0).bytes(5000)
    segments = DETECTOR.detect_bytes(bytes(3000) + noise)
    assert [(s.start, s.format) for s in segments] == [(0, "zeros"), (3000, "high-entropy")]
    assert all(s.modality is Modality.BINARY for s in segments)


def test_headerless_parts_are_split_where_their_statistics_change():
    parts = [pcm_u8(4000), np.random.default_rng(1).bytes(3000), picture(48, 40).tobytes()]
    segments = DETECTOR.detect_bytes(b"".join(parts))
    assert [s.modality for s in segments] == [Modality.AUDIO, Modality.BINARY, Modality.IMAGE]
    assert abs(segments[1].start - 4000) <= 16 and abs(segments[2].start - 7000) <= 16


def test_libmagic_names_what_no_rule_knows():
    pytest.importorskip("magic")
    rar = b"Rar!\x1a\x07\x00" + bytes(np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8))
    segments = ModalityDetector().detect_bytes(rar)
    assert any("libmagic" in s.reason and "rar" in s.format for s in segments)


# ---------------------------------------------------------------------------------------------
# real files: text wins, binary containers by their structure


NUMBERS_CSV = b"".join(b"%d, 0x%016x, %.6f\n" % (i, (i * 0x9E3779B97F4A7C15) % (1 << 64), i / 7) for i in range(300))
MESSAGES = ("Файл не найден: проверьте путь и повторите попытку. Сохранить изменения перед выходом?\n"
            "Не удалось открыть соединение с сервером; повторите попытку позже.\n") * 8
JAPANESE = "".join(f"{i}. ファイル「data{i}.txt」が見つかりません。"
                   "パスを確認して、もう一度お試しください。\n" for i in range(12))
CHINESE = "".join(f"{i}. 找不到檔案「data{i}.txt」：請檢查路徑後再試一次。"
                  "是否要在離開前儲存變更？\n" for i in range(12))


def whole_text(data: bytes) -> Segment:
    segments = DETECTOR.detect_bytes(data)
    assert [s.modality for s in segments] == [Modality.TEXT], segments
    return segments[0]


def test_a_csv_of_numbers_is_one_text_segment_named_csv():
    assert whole_text(NUMBERS_CSV).format == "csv"


def test_json_data_with_numbers_is_text_named_json():
    data = json.dumps({"rules": [{"conditions": [{"fn": "isSet", "argv": [{"ref": f"Region{i}"}]}], "n": i * 1.5}
                                 for i in range(60)]}, indent=2).encode()
    assert whole_text(data).format == "json"


def test_a_short_html_page_is_text_named_html():
    data = b'<html>\n<head><title>Index</title></head>\n<body>\n<a href="a.html">a</a>\n</body>\n</html>\n'
    assert whole_text(data).format == "html"


def test_a_symbolic_svg_icon_full_of_path_numbers_is_one_text_segment():
    path = " ".join(f"c {i * 0.074219:.6f} {i * 0.003906:.6f} 0.144531 0.027344" for i in range(60))
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" height="16px">\n'
            b'<path d="m 4 1 ' + path.encode() + b' z" fill="#222222"/>\n</svg>\n')
    assert whole_text(data).format == "svg"


def test_source_code_is_text_named_by_its_language():
    assert whole_text(b"import os\n\n\ndef main():\n    print(os.getcwd())\n" * 3).format == "python"
    assert whole_text(b"#include <stdio.h>\n\nint main(void) { return 0; }\n" * 3).format == "c"
    assert whole_text(b"#!/bin/sh\nset -e\necho \"$HOME\"\n" * 3).format == "shell"


@pytest.mark.parametrize("text, codec", [(MESSAGES, "koi8-r"), (MESSAGES, "cp1251"), (JAPANESE, "shift_jis"),
                                         (CHINESE, "big5"), ("Größe ändern, Schließen. " * 30, "latin-1")],
                         ids=["koi8-r", "cp1251", "shift-jis", "big5", "latin-1"])
def test_text_in_a_legacy_encoding_is_text_reported_with_its_encoding(text, codec):
    segment = whole_text(text.encode(codec))
    assert segment.encoding not in ("", "utf-8")
    assert segment.encoding != "utf-8" and (text.encode(codec).decode(segment.encoding) == text)


def test_xml_in_big5_is_text_named_xml():
    data = ('<?xml version="1.0" encoding="Big5"?>\n<catalogue>\n'
            + "".join(f"  <message>{line}</message>\n" for line in CHINESE.splitlines())
            + "</catalogue>\n").encode("big5")
    segment = whole_text(data)
    assert (segment.format, segment.encoding) == ("xml", "big5")


@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-le", b""), ("utf-16-be", b""),
                                        ("utf-16-be", b"\xfe\xff")])
@pytest.mark.parametrize("text", [MESSAGES, JAPANESE, "Plain English words, line after line.\n" * 20],
                         ids=["russian", "japanese", "english"])
def test_utf16_text_with_or_without_a_bom_is_text(codec, bom, text):
    assert whole_text(bom + text.encode(codec)).encoding == codec


def test_headerless_utf16_pcm_is_not_mistaken_for_utf16_text():
    samples = np.round(np.sin(np.arange(8000) / 9) * 300).astype("<i2").tobytes()  # quiet: high bytes 0 or 0xFF
    assert all(s.modality is not Modality.TEXT for s in DETECTOR.detect_bytes(samples))


@pytest.mark.parametrize("word", [b"ftyp", b"RIFF", b"moov", b"OggS", b"fLaC", b"\x89PNG"])
def test_a_signature_written_inside_text_is_a_word_not_an_embedded_file(word):
    text = TEXT[:200] + b"The box " + word + b" starts a file of that kind. " + TEXT
    whole_text(text)


def test_a_real_file_inside_text_is_still_found():
    segments = DETECTOR.detect_bytes(TEXT + native_wav() + TEXT)
    assert [s.modality for s in segments] == [Modality.TEXT, Modality.AUDIO, Modality.TEXT]


def pyc(version: int = 3495) -> bytes:
    strings = b"".join(b"\xfa" + bytes([len(w)]) + w for w in (b"docstring of the module, in words", b"name") * 40)
    return struct.pack("<H", version) + b"\r\n" + bytes(12) + b"\xe3" + bytes(range(256)) * 4 + strings


def test_compiled_python_is_one_binary_segment_whatever_its_strings():
    segments = DETECTOR.detect_bytes(pyc())
    assert [(s.modality, s.format) for s in segments] == [(Modality.BINARY, "pyc")]


def gettext_catalogue() -> bytes:
    pairs = [(f"Message {i}".encode(), f"Сообщение номер {i}, переведённое".encode()) for i in range(40)]
    count, header = len(pairs), 28
    strings_at = header + 16 * count
    originals, translations, blob, pos = [], [], b"", strings_at
    for source, _ in pairs:
        originals.append((len(source), pos))
        blob += source + b"\x00"
        pos += len(source) + 1
    for _, target in pairs:
        translations.append((len(target), pos))
        blob += target + b"\x00"
        pos += len(target) + 1
    tables = b"".join(struct.pack("<II", *e) for e in originals + translations)
    return struct.pack("<7I", 0x950412DE, 0, count, header, header + 8 * count, 0, 0) + tables + blob


def test_a_gettext_catalogue_is_binary_to_its_last_string():
    data = gettext_catalogue()
    segments = DETECTOR.detect_bytes(data + TEXT)
    assert [(s.format, s.end) for s in segments] == [("gettext-catalogue", len(data)), ("utf-8", len(data + TEXT))]


def test_an_ar_archive_and_a_tar_archive_are_binary_by_their_headers():
    member = Path(sys.executable).resolve().read_bytes()[:3000]  # an object file's bytes, as in a static library
    ar = b"!<arch>\n" + b"text.txt/".ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"644".ljust(8) \
        + str(len(member)).encode().ljust(10) + b"`\n" + member
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("text.txt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    for data, fmt in ((ar, "ar"), (buf.getvalue(), "tar")):
        segments = DETECTOR.detect_bytes(data)
        assert max(segments, key=lambda s: s.size).format == fmt and segments[0].start == 0


def test_fonts_numpy_arrays_and_pickles_are_binary_by_their_headers():
    font = struct.pack(">IHHHH", 0x00010000, 2, 32, 1, 0) + struct.pack(">4sIII", b"cmap", 0, 44, 200) \
        + struct.pack(">4sIII", b"glyf", 0, 244, 600) + bytes(RNG.integers(0, 256, 800, dtype=np.uint8))
    npy = io.BytesIO()
    np.save(npy, np.linspace(0, 1, 600).astype("<f4"))
    data = pickle.dumps({"weights": list(range(300)), "names": ["alpha"] * 50}, protocol=4)
    for blob, fmt in ((font, "font"), (npy.getvalue(), "npy"), (data, "pickle")):
        segments = DETECTOR.detect_bytes(blob)
        assert [(s.modality, s.format) for s in segments] == [(Modality.BINARY, fmt)], (fmt, segments)


def test_elf_and_sqlite_are_binary_never_pixels_or_sound():
    elf = Path(sys.executable).resolve().read_bytes()[:1 << 20]
    for data in (elf, sqlite_db()):
        assert max(DETECTOR.detect_bytes(data), key=lambda s: s.size).modality is Modality.BINARY


@pytest.mark.parametrize("file", [native_bmp, native_wav])
def test_a_short_label_before_a_header_is_its_own_text_segment(file):
    label = b"cat.bmp\n"
    segments = DETECTOR.detect_bytes(label + file())
    assert [(s.start, s.modality) for s in segments][:2] == [(0, Modality.TEXT), (len(label), segments[1].modality)]
    assert segments[1].modality is not Modality.TEXT


def test_an_rf64_wav_is_audio_to_the_size_its_ds64_chunk_declares():
    size = 4 + 36 + 24 + 8 + 45  # WAVE, ds64, fmt and data chunks: what follows the 8-byte RF64 header
    ds64 = b"ds64" + struct.pack("<IQQQI", 28, size, 45, 5, 0)
    data = b"RF64" + b"\xff" * 4 + b"WAVE" + ds64 + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 3, 8000, 72000, 9, 24) \
        + b"data" + b"\xff" * 4 + bytes(RNG.integers(0, 256, 45, dtype=np.uint8))
    assert len(data) == 8 + size
    segments = DETECTOR.detect_bytes(data + TEXT)
    assert [(s.modality, s.end) for s in segments] == [(Modality.AUDIO, len(data)), (Modality.TEXT, len(data + TEXT))]


def test_a_wav_cut_before_its_first_chunk_is_still_audio():
    segments = DETECTOR.detect_bytes(native_wav()[:13])
    assert [(s.modality, s.format) for s in segments] == [(Modality.AUDIO, "wav")]


def test_a_tiny_file_of_digits_is_text():
    assert whole_text(b"t=00:00:00.99999999999999").modality is Modality.TEXT


@pytest.mark.parametrize("at", [0, 1])
def test_a_boundary_at_a_damaged_header_lands_within_4_bytes(at):
    data = native_bmp()
    segments = DETECTOR.detect_bytes(TEXT + flip(data, at))
    assert segments[0].modality is Modality.TEXT and abs(segments[1].start - len(TEXT)) <= 4


# ---------------------------------------------------------------------------------------------
# properties: any bytes at all


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_segments_cover_arbitrary_bytes_exactly(data):
    assert_covers(DETECTOR.detect_bytes(data), data)


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(list(FILES.values())))[0][:6000])
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 400))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            other = draw(st.sampled_from(list(FILES.values())))[0]
            data[at:at] = other[: draw(st.integers(1, 2000))]
    return bytes(data)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_files())
def test_segments_cover_mutated_files_exactly(data):
    assert_covers(DETECTOR.detect_bytes(data), data)


# ---------------------------------------------------------------------------------------------
# the command line's helpers


def test_detect_files_json_has_the_cli_shape(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.txt"
    a.write_bytes(TEXT + native_bmp())
    b.write_bytes(b"")
    result = detect_files_json([a, b])
    assert json.loads(json.dumps(result)) == result
    assert [r["path"] for r in result] == [str(a), str(b)]
    assert result[1]["segments"] == []
    for segment in result[0]["segments"]:
        assert set(segment) - {"encoding"} == {"start", "end", "modality", "format", "confidence"}
        assert ("encoding" in segment) == (segment["modality"] == "text")
    assert [(s["modality"], s["format"]) for s in result[0]["segments"]] == [("text", "utf-8"), ("image", "bmp")]


def test_detect_files_json_refuses_a_missing_file_before_any_work(tmp_path):
    with pytest.raises(OmniByteError, match="not found"):
        detect_files_json([tmp_path / "nope"])


def test_format_detections_prints_one_row_per_segment(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(TEXT + native_wav())
    lines = format_detections(detect_files_json([path])).splitlines()
    assert lines[0] == f"{path}: 2 segments"
    assert "text" in lines[1] and "wav" in lines[2]


def test_the_cli_detect_command_prints_the_json_shape(tmp_path, capsys):
    from omnibyte import cli

    if "detect" not in cli.build_parser().format_help():
        pytest.skip("the detect subcommand is not wired into the CLI yet")
    path = tmp_path / "a.bin"
    path.write_bytes(TEXT + native_bmp())
    assert cli.main(["detect", "--json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == detect_files_json([path])
