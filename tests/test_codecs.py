import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from omnibyte.codecs import (
    BMP_BYTES,
    MAX_UPLOAD_BYTES,
    WAV_BYTES,
    Y4M_BYTES,
    DecodedAudio,
    DecodedImage,
    DecodedText,
    DecodedVideo,
    NativeBytes,
    audio_to_wav,
    decode_audio,
    decode_image,
    decode_native,
    decode_text,
    decode_video,
    encode_audio,
    encode_image,
    encode_text,
    encode_video,
    image_to_png,
    to_native,
    video_to_gif,
)
from omnibyte.codecs import audio as audio_codec
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality

REPO = Path(__file__).resolve().parents[1]
Y4M_HEADER = b"YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono\n"
FRAME_STRIDE = 6 + 256


# ---- inputs made in-process ----

def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // (width + height)], axis=-1).astype(np.uint8)  # (H, W, 3)


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **save)
    return out.getvalue()


def gif_bytes(levels: list[int], durations: list[int] | int | None = 100, size: tuple[int, int] = (20, 20)) -> bytes:
    frames = [Image.new("L", size, level) for level in levels]
    extra = {} if durations is None else {"duration": durations}
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], loop=0, **extra)
    return out.getvalue()


def tone(freq: float = 440.0, seconds: float = 1.0, rate: int = 44100, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def sound_bytes(samples: np.ndarray, rate: int = 44100, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels but which carries almost no data."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def dominant_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) - 128))
    return float(np.argmax(spectrum) * rate / len(samples))


NATIVE_TEXT = encode_text("Grüße, 世界! ✓\n".encode("utf-8")).data
NATIVE_IMAGE = encode_image(image_bytes(gradient())).data
NATIVE_AUDIO = encode_audio(sound_bytes(tone())).data
NATIVE_VIDEO = encode_video(gif_bytes([0, 80, 160, 240])).data
NATIVE = {Modality.TEXT: NATIVE_TEXT, Modality.IMAGE: NATIVE_IMAGE,
          Modality.AUDIO: NATIVE_AUDIO, Modality.VIDEO: NATIVE_VIDEO}


# ---- uploads in general ----

def test_empty_upload_is_refused():
    with pytest.raises(OmniByteError, match="empty"):
        to_native(b"")


def test_uploads_over_the_size_cap_are_refused():
    with pytest.raises(OmniByteError, match=r"limited to 52,428,800 bytes \(50 MiB\)"):
        to_native(b"a" * (MAX_UPLOAD_BYTES + 1))


def test_unsupported_file_type_is_refused():
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    with pytest.raises(OmniByteError, match="unsupported file type"):
        to_native(elf)


def test_binary_has_no_native_format():
    with pytest.raises(OmniByteError, match="no native format"):
        to_native(b"\x00\x01", Modality.BINARY)


@pytest.mark.parametrize("upload, modality", [
    (image_bytes(gradient()), Modality.IMAGE),
    (gif_bytes([0]), Modality.IMAGE),
    (gif_bytes([0, 255]), Modality.VIDEO),
    (sound_bytes(tone()), Modality.AUDIO),
    (sound_bytes(tone(), fmt="FLAC"), Modality.AUDIO),
    (b"plain words\n", Modality.TEXT),
    ("caf\u00e9".encode("utf-16"), Modality.TEXT),
    (NATIVE_VIDEO, Modality.VIDEO),
])
def test_uploads_are_routed_by_their_content(upload, modality):
    assert to_native(upload).modality is modality


def test_file_name_decides_only_when_the_content_cannot():
    legacy = "na\u00efve\x01\x02 caf\u00e9".encode("cp1252")  # too many control characters to sniff as text
    with pytest.raises(OmniByteError, match="unsupported"):
        to_native(legacy)
    assert to_native(legacy, filename="notes.txt").data == "na\u00efve\x01\x02 caf\u00e9".encode("utf-8")


def test_an_explicit_modality_overrides_sniffing():
    native = to_native(gif_bytes([0, 255]), Modality.IMAGE)
    assert native.modality is Modality.IMAGE and len(native.data) == BMP_BYTES


def test_decode_native_routes_by_modality():
    assert isinstance(decode_native(NATIVE_IMAGE, Modality.IMAGE), DecodedImage)
    assert isinstance(decode_native(NATIVE_AUDIO, Modality.AUDIO), DecodedAudio)
    assert isinstance(decode_native(NATIVE_VIDEO, Modality.VIDEO), DecodedVideo)
    assert isinstance(decode_native(NATIVE_TEXT, Modality.TEXT), DecodedText)
    with pytest.raises(OmniByteError):
        decode_native(b"", Modality.BINARY)


def test_codecs_do_not_import_torch():
    check = "import sys, omnibyte.codecs; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], cwd=REPO).returncode == 0


# ---- text ----

def test_str_text_becomes_utf8():
    assert encode_text("naïve ✓") == NativeBytes(Modality.TEXT, "naïve ✓".encode("utf-8"), ())


def test_valid_utf8_is_kept_byte_for_byte():
    assert encode_text(NATIVE_TEXT).data == NATIVE_TEXT


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_text_with_a_byte_order_mark_is_transcoded_to_utf8(encoding):
    data = "Grüße ✓".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # Python writes no mark for an explicit byte order
    native = encode_text(data)
    assert native.data == "Grüße ✓".encode("utf-8") and "byte-order mark" in native.notes[0]


def test_legacy_text_falls_back_to_windows_1252():
    native = encode_text("€uro café".encode("cp1252"))
    assert native.data == "€uro café".encode("utf-8") and "Windows-1252" in native.notes[0]


def test_lone_surrogates_are_replaced_with_a_note():
    native = encode_text("a\ud800b")
    assert native.data == b"a?b" and "surrogate" in native.notes[0]


def test_valid_text_decodes_without_repairs():
    assert decode_text(NATIVE_TEXT) == DecodedText("Grüße, 世界! ✓\n", ())


def test_invalid_utf8_is_shown_not_dropped():
    decoded = decode_text(b"ok\xff\xfeok")
    assert decoded.text == "ok\\xff\\xfeok"
    assert decoded.repairs == ("2 invalid UTF-8 byte(s) shown as \\xNN",)


def test_text_cut_mid_character_says_so():
    decoded = decode_text("ab€".encode("utf-8")[:-1])
    assert decoded.text == "ab\\xe2\\x82"
    assert len(decoded.repairs) == 1 and "ends mid-character" in decoded.repairs[0]


# ---- image ----

def test_image_converts_to_an_exact_native_bmp():
    assert len(NATIVE_IMAGE) == BMP_BYTES == 3126
    magic, size, _, _, offset, info, width, height, planes, bpp, compression, image_size = \
        struct.unpack_from("<2sIHHIIiiHHII", NATIVE_IMAGE)
    assert (magic, size, offset, info, width, height, planes, bpp, compression, image_size) == \
        (b"BM", 3126, 54, 40, 32, 32, 1, 24, 0, 3072)
    with Image.open(io.BytesIO(NATIVE_IMAGE)) as im:
        assert (im.format, im.size, im.mode) == ("BMP", (32, 32), "RGB")


def test_bmp_header_is_identical_for_every_image():
    other = encode_image(image_bytes(np.zeros((5, 7, 3), dtype=np.uint8))).data
    assert other[:54] == NATIVE_IMAGE[:54]


def test_bmp_rows_are_stored_bottom_up_in_bgr_order():
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[-1] = (255, 0, 0)  # bottom row red
    native = encode_image(image_bytes(pixels)).data
    assert native[54:57] == b"\x00\x00\xff"


def test_image_round_trip_decodes_without_repairs():
    decoded = decode_image(NATIVE_IMAGE)
    assert decoded.repairs == () and decoded.rows_present == 32
    with Image.open(io.BytesIO(NATIVE_IMAGE)) as im:
        assert np.array_equal(decoded.pixels, np.asarray(im.convert("RGB")))


def test_native_bmp_upload_is_kept_identical():
    assert encode_image(NATIVE_IMAGE).data == NATIVE_IMAGE


def test_a_cut_short_native_bmp_upload_is_salvaged():
    native = encode_image(NATIVE_IMAGE[:54 + 16 * 96])
    assert len(native.data) == BMP_BYTES and native.notes[0] == "native 32x32 BMP, repaired"
    assert np.array_equal(decode_image(native.data).pixels[16:], decode_image(NATIVE_IMAGE).pixels[16:])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_common_image_formats_convert(fmt):
    native = encode_image(image_bytes(gradient(), fmt))
    assert len(native.data) == BMP_BYTES and native.notes[0].startswith(f"{fmt} 64x48")
    # a smooth gradient survives every format closely
    assert np.abs(decode_image(native.data).pixels.astype(int) - decode_image(NATIVE_IMAGE).pixels).mean() < 12


def test_transparency_is_composited_onto_white():
    clear = np.zeros((40, 40, 4), dtype=np.uint8)
    native = encode_image(image_bytes(clear))
    assert (decode_image(native.data).pixels == 255).all() and "composited transparency onto white" in native.notes


def test_wide_images_are_center_cropped():
    pixels = np.zeros((30, 90, 3), dtype=np.uint8)
    pixels[:, 30:60] = (0, 255, 0)  # only the middle third is green
    native = encode_image(image_bytes(pixels))
    assert "center-cropped to 30x30" in native.notes
    assert (decode_image(native.data).pixels == (0, 255, 0)).all()


def test_a_whole_number_enlargement_is_taken_back_pixel_for_pixel():
    small = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    native = encode_image(image_bytes(small.repeat(4, axis=0).repeat(4, axis=1)))
    assert "a 4x enlargement of a 32x32 picture: taken back pixel for pixel" in native.notes
    assert np.array_equal(decode_image(native.data).pixels, small)
    # one pixel off the block pattern: an ordinary picture, resampled
    big = small.repeat(4, axis=0).repeat(4, axis=1)
    big[5, 6] ^= 1
    assert "resized 128x128 -> 32x32 (Lanczos)" in encode_image(image_bytes(big)).notes


def test_16_bit_images_are_scaled_not_clipped():
    deep = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    out = io.BytesIO()
    deep.save(out, format="PNG")
    assert abs(int(decode_image(encode_image(out.getvalue()).data).pixels[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to show
    native = encode_image(image_bytes(pixels, "JPEG", exif=exif))
    assert "rotated as its EXIF orientation says" in native.notes
    assert native.notes[0] == "JPEG 40x20 RGB" and "center-cropped to 20x20" in native.notes


def test_animated_image_as_image_uses_its_first_frame():
    native = encode_image(gif_bytes([0, 255]))
    assert "used the first of 2 frames" in native.notes and (decode_image(native.data).pixels == 0).all()


def test_corrupt_image_upload_is_refused():
    with pytest.raises(OmniByteError, match="corrupt or unsupported image"):
        to_native(image_bytes(gradient())[:100])


def test_non_image_bytes_are_refused_as_an_image():
    with pytest.raises(OmniByteError, match="not an image"):
        encode_image(b"just some words")


@pytest.mark.parametrize("side", [9_000, 10_000, 100_000])  # over our limit, Pillow's warning, Pillow's error
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns; we refuse
def test_decompression_bomb_is_refused_before_decoding(side):
    started = time.process_time()  # CPU time: a busy machine does not stretch it
    with pytest.raises(OmniByteError, match="refused"):
        to_native(png_declaring(side, side))
    assert time.process_time() - started < 1.0


def test_truncated_bmp_keeps_the_rows_that_arrived():
    decoded = decode_image(NATIVE_IMAGE[:54 + 10 * 96 + 4])
    complete = decode_image(NATIVE_IMAGE).pixels
    assert decoded.rows_present == 10
    assert np.array_equal(decoded.pixels[-10:], complete[-10:])  # bottom rows arrive first
    assert (decoded.pixels[:21] == 128).all()
    assert decoded.repairs == ("cut short: 10 of 32 rows present (from the bottom), plus 1 pixel(s) of the next row;"
                               " the rest is grey",)


@pytest.mark.parametrize("offset, value", [(0, b"XM"), (2, b"\x00\x00\x00\x00"), (10, b"\x99"), (18, b"\x40"),
                                           (22, b"\x10"), (28, b"\x20")])
def test_damaged_bmp_header_is_read_with_the_native_layout(offset, value):
    damaged = NATIVE_IMAGE[:offset] + value + NATIVE_IMAGE[offset + len(value):]
    decoded = decode_image(damaged)
    assert np.array_equal(decoded.pixels, decode_image(NATIVE_IMAGE).pixels) and decoded.rows_present == 32
    assert len(decoded.repairs) == 1 and decoded.repairs[0].startswith("header fields damaged")


def test_bmp_shorter_than_its_header_decodes_to_grey():
    decoded = decode_image(NATIVE_IMAGE[:20])
    assert (decoded.pixels == 128).all() and decoded.rows_present == 0


def test_trailing_bytes_after_a_bmp_are_ignored():
    decoded = decode_image(NATIVE_IMAGE + b"extra")
    assert decoded.repairs == ("ignored 5 byte(s) after the last row",) and decoded.rows_present == 32


def test_image_to_png_upscales_with_crisp_pixels():
    pixels = decode_image(NATIVE_IMAGE).pixels
    with Image.open(io.BytesIO(image_to_png(pixels, scale=4))) as im:
        big = np.asarray(im.convert("RGB"))
    assert big.shape == (128, 128, 3)
    assert np.array_equal(big[::4, ::4], pixels) and np.array_equal(big[3::4, 3::4], pixels)


# ---- audio ----

def test_audio_converts_to_a_canonical_wav():
    assert len(NATIVE_AUDIO) == WAV_BYTES == 4044
    # fmt chunk: its size, PCM, mono, 8 kHz, 8000 bytes/s, 1-byte frames, 8 bits
    fmt_chunk = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    header = b"RIFF" + struct.pack("<I", 4036) + b"WAVEfmt " + fmt_chunk + b"data" + struct.pack("<I", 4000)
    assert NATIVE_AUDIO[:44] == header
    samples, rate = sf.read(io.BytesIO(NATIVE_AUDIO), dtype="int16")
    info = sf.info(io.BytesIO(NATIVE_AUDIO))
    assert (rate, info.channels, info.subtype, len(samples)) == (8000, 1, "PCM_U8", 4000)


def test_audio_round_trip_decodes_without_repairs():
    decoded = decode_audio(NATIVE_AUDIO)
    assert decoded.repairs == () and decoded.sample_rate == 8000 and len(decoded.samples) == 4000
    assert abs(dominant_hz(decoded.samples) - 440) < 4


def test_native_wav_upload_is_kept_identical():
    assert encode_audio(NATIVE_AUDIO).data == NATIVE_AUDIO


@pytest.mark.parametrize("fmt, rate", [("WAV", 44100), ("WAV", 8000), ("FLAC", 48000), ("OGG", 22050)])
def test_common_audio_formats_convert(fmt, rate):
    native = encode_audio(sound_bytes(tone(rate=rate), rate, fmt))
    decoded = decode_audio(native.data)
    assert len(native.data) == WAV_BYTES and decoded.repairs == ()
    assert abs(dominant_hz(decoded.samples) - 440) < 4
    assert 40 < np.abs(decoded.samples.astype(int) - 128).max() < 80  # amplitude 0.5 kept


def test_stereo_audio_is_mixed_to_mono():
    stereo = np.stack([tone(), np.zeros(44100)], axis=1)
    native = encode_audio(sound_bytes(stereo))
    assert "mixed 2 channels to mono" in native.notes
    assert 20 < np.abs(decode_audio(native.data).samples.astype(int) - 128).max() < 40  # half the amplitude


def test_short_audio_is_padded_with_silence():
    native = encode_audio(sound_bytes(tone(seconds=0.1, rate=8000), 8000))
    samples = decode_audio(native.data).samples
    assert len(samples) == 4000 and (samples[800:] == 128).all()
    assert any(note.startswith("padded with 0.400 s of silence") for note in native.notes)


def test_seconds_sets_the_clip_length():
    native = encode_audio(sound_bytes(tone()), seconds=0.25)
    assert len(native.data) == 44 + 2000 and decode_audio(native.data).repairs == ()


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), 61, "0.5"])
def test_bad_clip_lengths_are_refused(seconds):
    with pytest.raises(OmniByteError, match="seconds"):
        encode_audio(sound_bytes(tone()), seconds=seconds)


def test_too_loud_audio_is_clipped_with_a_note():
    native = encode_audio(sound_bytes(tone(amplitude=2.0, rate=8000), 8000, subtype="FLOAT"))
    assert any(note.startswith("clipped") for note in native.notes)
    assert decode_audio(native.data).samples.min() == 0


def test_undecodable_audio_is_refused():
    with pytest.raises(OmniByteError, match="not audio"):
        to_native(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10, Modality.AUDIO)


def test_resampling_without_scipy_matches_scipy(monkeypatch):
    upload = sound_bytes(tone(rate=44100), 44100)
    with_scipy = decode_audio(encode_audio(upload).data).samples.astype(int)
    monkeypatch.setattr(audio_codec, "_scipy_resample_poly", lambda: None)
    native = encode_audio(upload)
    assert "resampled 44100 Hz -> 8000 Hz (windowed sinc)" in native.notes
    assert np.abs(decode_audio(native.data).samples.astype(int) - with_scipy).max() <= 2


def test_truncated_wav_keeps_the_samples_that_arrived():
    decoded = decode_audio(NATIVE_AUDIO[:44 + 1001])
    assert np.array_equal(decoded.samples, decode_audio(NATIVE_AUDIO).samples[:1001])
    assert decoded.repairs == ("cut short: 1001 of 4000 samples present",)


@pytest.mark.parametrize("offset, value", [(0, b"RIFX"), (4, b"\xff\xff"), (8, b"WAVX"), (22, b"\x02"),
                                           (24, b"\x44\xac"), (34, b"\x10"), (36, b"atad")])
def test_damaged_wav_header_is_read_with_the_native_layout(offset, value):
    damaged = NATIVE_AUDIO[:offset] + value + NATIVE_AUDIO[offset + len(value):]
    decoded = decode_audio(damaged)
    assert np.array_equal(decoded.samples, decode_audio(NATIVE_AUDIO).samples) and decoded.sample_rate == 8000
    assert len(decoded.repairs) == 1 and decoded.repairs[0].startswith("header fields damaged")


def test_a_damaged_size_field_keeps_every_sample():
    damaged = NATIVE_AUDIO[:40] + struct.pack("<I", 10) + NATIVE_AUDIO[44:]
    decoded = decode_audio(damaged)
    assert len(decoded.samples) == 4000
    assert decoded.repairs == ("header fields damaged (data size): assumed native 8 kHz unsigned 8-bit mono",)


def test_bytes_beyond_a_consistent_data_size_are_kept_as_samples():
    decoded = decode_audio(audio_to_wav(np.full(10, 128, dtype=np.uint8)) + b"\x80" * 6)
    assert len(decoded.samples) == 16
    assert decoded.repairs == ("6 byte(s) beyond the declared data size, kept as samples",)


def test_wav_shorter_than_its_header_has_no_samples():
    decoded = decode_audio(NATIVE_AUDIO[:30])
    assert len(decoded.samples) == 0 and decoded.repairs[0].startswith("header incomplete")


def test_odd_length_audio_is_a_valid_wav_with_a_pad_byte():
    wav = audio_to_wav(np.array([0, 128, 255], dtype=np.uint8))
    assert len(wav) == 48 and decode_audio(wav).repairs == ()
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == 8000 and list(samples) == [-128 * 256, 0, 127 * 256]


# ---- video ----

def test_video_converts_to_an_exact_native_y4m():
    assert len(NATIVE_VIDEO) == Y4M_BYTES == 2133 and NATIVE_VIDEO.startswith(Y4M_HEADER)
    markers = [NATIVE_VIDEO[len(Y4M_HEADER) + i * FRAME_STRIDE:][:6] for i in range(8)]
    assert markers == [b"FRAME\n"] * 8


def test_video_round_trip_decodes_without_repairs():
    decoded = decode_video(NATIVE_VIDEO)
    assert decoded.repairs == () and decoded.fps == 8 and decoded.frames.shape == (8, 16, 16)


def test_native_y4m_upload_is_kept_identical():
    assert encode_video(NATIVE_VIDEO).data == NATIVE_VIDEO


def test_animated_gif_is_sampled_at_8_fps_from_its_frame_durations():
    native = encode_video(gif_bytes([0, 80, 160, 240], durations=250))
    assert list(decode_video(native.data).frames[:, 0, 0]) == [0, 0, 80, 80, 160, 160, 240, 240]


def test_short_animation_loops_to_fill_8_frames():
    native = encode_video(gif_bytes([0, 255], durations=120))  # GIF counts in 10 ms units
    assert list(decode_video(native.data).frames[:, 0, 0]) == [0, 255] * 4
    assert "looped the 0.24 s animation to fill 1 s" in native.notes


def test_gif_frames_without_a_duration_last_100_ms():
    native = encode_video(gif_bytes([0, 50, 100, 150, 200, 250], durations=None))
    assert list(decode_video(native.data).frames[:, 0, 0]) == [0, 50, 100, 150, 250, 0, 50, 100]


def test_still_image_becomes_8_identical_frames():
    native = encode_video(image_bytes(gradient()))
    frames = decode_video(native.data).frames
    assert (frames == frames[0]).all() and "still image: repeated it in all 8 frames" in native.notes


def test_foreign_y4m_is_converted_from_its_luma():
    width, height = 32, 24
    frame = bytes([200]) * (width * height) + bytes([90]) * (2 * 16 * 12)  # luma, then 4:2:0 chroma
    y4m = f"YUV4MPEG2 W{width} H{height} F4:1 C420jpeg\n".encode() + (b"FRAME\n" + frame) * 2
    native = encode_video(y4m)
    frames = decode_video(native.data).frames
    assert len(native.data) == Y4M_BYTES and (frames == 200).all()
    assert "looped the 0.50 s animation to fill 1 s" in native.notes


def test_a_cut_short_native_y4m_upload_is_salvaged():
    native = encode_video(NATIVE_VIDEO[:len(Y4M_HEADER) + 4 * FRAME_STRIDE])
    frames = decode_video(native.data).frames
    assert len(native.data) == Y4M_BYTES and native.notes[0] == "native 16x16 Y4M, repaired"
    assert np.array_equal(frames[4:], decode_video(NATIVE_VIDEO).frames[:4])  # the 4 frames loop


def test_bytes_after_the_last_y4m_frame_are_ignored_on_upload():
    y4m = b"YUV4MPEG2 W8 H8 F8:1 Cmono\n" + (b"FRAME\n" + bytes([77]) * 64) * 8 + b"\n\n"
    native = encode_video(y4m)
    assert "ignored 2 byte(s) after frame 8: no FRAME marker" in native.notes
    assert (decode_video(native.data).frames == 77).all()


def test_truncated_y4m_fills_the_last_frame_with_grey():
    decoded = decode_video(NATIVE_VIDEO[:len(Y4M_HEADER) + 2 * FRAME_STRIDE + 6 + 100])
    assert decoded.frames.shape == (3, 16, 16)
    assert np.array_equal(decoded.frames[2].ravel()[:100], decode_video(NATIVE_VIDEO).frames[2].ravel()[:100])
    assert (decoded.frames[2].ravel()[100:] == 128).all()
    assert decoded.repairs == ("frame 3 cut short: 100 of 256 pixels present; the rest is grey",
                               "only 3 of 8 frames present")


@pytest.mark.parametrize("header", [b"YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmomo\n",
                                    b"YUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono!",
                                    b"YUV4MPEG2 W1\n H16 F8:1 Ip A1:1 Cmono\n",
                                    b"XUV4MPEG2 W16 H16 F8:1 Ip A1:1 Cmono\n",
                                    b""])
def test_damaged_y4m_header_is_read_with_the_native_layout(header):
    decoded = decode_video(header + NATIVE_VIDEO[len(Y4M_HEADER):])
    assert np.array_equal(decoded.frames, decode_video(NATIVE_VIDEO).frames) and decoded.fps == 8
    assert len(decoded.repairs) == 1 and "assumed 16x16 mono at 8 fps" in decoded.repairs[0]


def test_damaged_frame_marker_is_read_in_place():
    at = len(Y4M_HEADER) + 3 * FRAME_STRIDE
    decoded = decode_video(NATIVE_VIDEO[:at] + b"FRAMX\n" + NATIVE_VIDEO[at + 6:])
    assert np.array_equal(decoded.frames, decode_video(NATIVE_VIDEO).frames)
    assert decoded.repairs == ("FRAME marker damaged in frame(s) 4: assumed the native position",)


def test_a_dropped_byte_is_resynchronised_at_the_next_marker():
    at = len(Y4M_HEADER) + FRAME_STRIDE + 6 + 50  # inside frame 2's pixels
    decoded = decode_video(NATIVE_VIDEO[:at] + NATIVE_VIDEO[at + 1:])
    assert decoded.frames.shape == (8, 16, 16)
    assert np.array_equal(decoded.frames[2:], decode_video(NATIVE_VIDEO).frames[2:])
    assert decoded.repairs == ("FRAME marker out of place in frame(s) 3: resynchronised on it",)


def test_video_to_gif_renders_an_animated_gif():
    frames = decode_video(NATIVE_VIDEO).frames
    with Image.open(io.BytesIO(video_to_gif(frames, 8, scale=4))) as im:
        assert im.size == (64, 64) and im.is_animated and im.info["duration"] == 120  # GIF counts 10 ms units
        assert np.array_equal(np.asarray(im.convert("L"))[::4, ::4], frames[0])


def test_video_to_gif_of_no_frames_shows_grey():
    with Image.open(io.BytesIO(video_to_gif(np.zeros((0, 16, 16), dtype=np.uint8), 8))) as im:
        assert np.asarray(im.convert("L")).max() == 128


# ---- decoders on any bytes ----

def assert_promised_shape(modality: Modality, decoded) -> None:
    assert isinstance(decoded.repairs, tuple) and all(isinstance(r, str) for r in decoded.repairs)
    if modality is Modality.TEXT:
        assert isinstance(decoded.text, str)
        decoded.text.encode("utf-8")  # renderable: no lone surrogates left in
    elif modality is Modality.IMAGE:
        assert decoded.pixels.shape == (32, 32, 3) and decoded.pixels.dtype == np.uint8
        assert 0 <= decoded.rows_present <= 32
    elif modality is Modality.AUDIO:
        assert decoded.samples.ndim == 1 and decoded.samples.dtype == np.uint8 and decoded.sample_rate == 8000
    else:
        assert decoded.frames.ndim == 3 and decoded.frames.shape[1:] == (16, 16)
        assert decoded.frames.dtype == np.uint8 and decoded.fps == 8


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """Native bytes with the kinds of damage a byte-level model makes: wrong, extra, missing bytes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


FUZZ = settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("modality", list(NATIVE))
@FUZZ
@given(data=st.binary(max_size=3000))
def test_decoders_never_raise_on_arbitrary_bytes(modality, data):
    assert_promised_shape(modality, decode_native(data, modality))


@pytest.mark.parametrize("modality", list(NATIVE))
@FUZZ
@given(data=st.data())
def test_decoders_never_raise_on_damaged_native_bytes(modality, data):
    damaged = data.draw(mutated(NATIVE[modality]))
    assert_promised_shape(modality, decode_native(damaged, modality))
