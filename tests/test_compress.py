import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnibyte.cli import main
from omnibyte.codecs import audio_to_wav, frames_to_y4m, pixels_to_bmp
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.model.transformer import BytePredictor
from omnibyte.tools.compress import (
    MAX_ROWS,
    compress_bytes,
    decompress_bytes,
    guess_modality,
    model_fingerprint,
    prefix_tokens,
    read_header,
)
from omnibyte.tools.score import score_bytes

ROOT = Path(__file__).resolve().parent.parent
THREADS = torch.get_num_threads()
RNG = np.random.default_rng(0)
TEXT = ("The quick brown fox jumps over the lazy dog. Grüße aus Zürich! " * 6).encode()
IMAGE = pixels_to_bmp(np.tile(np.arange(32, dtype=np.uint8)[:, None, None] * 8, (1, 32, 3)))
AUDIO = audio_to_wav((128 + 100 * np.sin(np.arange(4000) / 5)).astype(np.uint8))
VIDEO = frames_to_y4m(np.stack([np.full((16, 16), 16 * i, dtype=np.uint8) for i in range(8)]))
RANDOM = RNG.integers(0, 256, 700, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("data", [TEXT, IMAGE, AUDIO, VIDEO, RANDOM, b"", b"\x00"],
                         ids=["text", "image", "audio", "video", "random", "empty", "one-byte"])
def test_every_kind_of_file_round_trips(model, data):
    blob = compress_bytes(model, data)
    assert decompress_bytes(model, blob) == data


@pytest.mark.parametrize("data", [TEXT, IMAGE, RANDOM], ids=["text", "image", "random"])
def test_every_container_version_round_trips(model, data):
    current = compress_bytes(model, data)
    assert read_header(current).version == 5  # every model: the deterministic step
    assert decompress_bytes(model, current) == data
    # files of earlier releases still decompress on the machine that wrote them: versions 3 and 4
    # (PyTorch steps, the fast-math compiled step), 1 and 2 (the same with constriction's own end)
    for old in (1, 2, 3, 4):
        legacy = compress_bytes(model, data, version=old)
        assert read_header(legacy).version == old
        assert decompress_bytes(model, legacy) == data
        # every path is the float model to float32 rounding, so the coded sizes are all but equal
        assert abs(len(legacy) - len(current)) <= (2 if old > 2 else 6)


def test_the_current_version_needs_no_compiled_float32_model(model):
    # a float64 model cannot run the fast-math compiled step, but codes version 5 all the same
    wide = model.to(torch.float64)
    blob = compress_bytes(wide, TEXT)
    assert read_header(blob).version == 5 and decompress_bytes(wide, blob) == TEXT
    with pytest.raises(OmniByteError, match="float32 on a CPU"):
        compress_bytes(wide, TEXT, version=4)


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compress-v5"
FIXTURE_FILES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix not in (".omb", ".json", ".safetensors"))


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_committed_files_decode_and_encode_byte_for_byte(name):
    # files written once (tests/fixtures/make_compress_fixtures.py) that every later release must read
    model = BytePredictor.from_pretrained(FIXTURES)
    original, blob = (FIXTURES / name).read_bytes(), (FIXTURES / f"{name}.omb").read_bytes()
    assert read_header(blob).version == 5
    torch.set_num_threads(1)
    try:
        assert decompress_bytes(model, blob) == original
    finally:
        torch.set_num_threads(THREADS)
    assert compress_bytes(model, original) == blob


def test_files_are_the_same_bytes_for_a_cpu_without_avx_or_fma(tmp_path):
    # Numba's generic x86-64 target (SSE2 only), compiled afresh in its own cache, with two
    # threads: it must read this machine's committed files and write them again, byte for byte
    script = f"""
import torch
from pathlib import Path
from omnibyte.tools.compress import compress_bytes, decompress_bytes
from omnibyte.model import BytePredictor
folder = Path({str(FIXTURES)!r})
model = BytePredictor.from_pretrained(folder)
for name in {FIXTURE_FILES!r}:
    original, blob = (folder / name).read_bytes(), (folder / (name + ".omb")).read_bytes()
    assert decompress_bytes(model, blob) == original, name
    assert compress_bytes(model, original) == blob, name
print("same bytes", torch.get_num_threads())
"""
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["same", "bytes", "2"]


def test_streams_end_at_the_shortest_point_that_still_decodes():
    # many messages, from near-certain to surprising, coded with random frequency tables
    import constriction

    import omnibyte.tools.compress as compress

    rng = np.random.default_rng(5)
    family = constriction.stream.model.Categorical(perfect=False)
    shortened, over_information = [], []
    for trial in range(600):
        n = int(rng.integers(1, 60))
        probs = rng.dirichlet(np.full(256, (0.001, 0.05, 1.0)[trial % 3]), size=n)
        freqs = compress.quantise(probs)
        if trial % 4 == 0:  # bytes the model finds surprising
            symbols = rng.integers(0, 256, n).astype(np.int32)
        else:
            symbols = np.array([rng.choice(256, p=p / p.sum()) for p in probs], dtype=np.int32)
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(symbols, family, freqs)
        stream = compress._stream_bytes(encoder)
        decoder = constriction.stream.queue.RangeDecoder(compress._bytes_to_words(stream, big_endian=True))
        assert np.array_equal(decoder.decode(family, freqs), symbols), trial
        sealed = encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")  # versions 1 and 2
        shortened.append(len(sealed) - len(stream))
        information = -np.log2(freqs[np.arange(n), symbols] / freqs.sum(axis=1)).sum() / 8
        over_information.append(len(stream) - information)
    # constriction's seal writes a whole word; the shortest end saves about two bytes a stream
    assert np.mean(shortened) > 1.2
    # and the stream is, on average, within a byte of the information it carries
    assert abs(np.mean(over_information)) < 1.0


def test_writing_an_unknown_container_version_is_refused(model):
    with pytest.raises(OmniByteError, match="no container version 7"):
        compress_bytes(model, TEXT, version=7)


def test_native_files_are_coded_after_their_modality_tag(model):
    assert [read_header(compress_bytes(model, d)).modality for d in (TEXT, IMAGE, AUDIO, VIDEO, RANDOM)] == [
        Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO, Modality.BINARY]


def test_a_file_of_many_windows_is_coded_in_several_batches(model):
    # the tiny model's context is 64 tokens: 2,100 bytes are 34 windows, more than one batch holds
    data = RNG.integers(0, 256, 2100, dtype=np.uint8).tobytes()
    blob = compress_bytes(model, data, Modality.BINARY)
    header = read_header(blob)
    assert header.window_size == model.config.max_seq_len - 1
    assert header.rows == MAX_ROWS and len(header.stream_sizes) == 3
    assert decompress_bytes(model, blob) == data


def test_bytes_the_model_thinks_impossible_still_round_trip():
    # sharpened output: every byte but the favourite gets a float32 probability of exactly 0
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)
    data = RNG.integers(0, 256, 300, dtype=np.uint8).tobytes()
    assert decompress_bytes(model, compress_bytes(model, data)) == data


def test_the_coded_size_matches_the_models_estimate(model):
    data = TEXT * 4
    blob = compress_bytes(model, data, Modality.TEXT)
    header = read_header(blob)
    estimate_bytes = score_bytes(model, data, prefix=prefix_tokens(Modality.TEXT)).surprisal_bits.sum() / 8
    assert sum(header.stream_sizes) <= 1.01 * estimate_bytes + 4 * len(header.stream_sizes)


def test_compression_is_deterministic(model):
    assert compress_bytes(model, TEXT) == compress_bytes(model, TEXT)


def test_a_container_from_another_model_is_refused(model):
    blob = compress_bytes(model, TEXT)
    with pytest.raises(OmniByteError, match="another model"):
        decompress_bytes(tiny_model(seed=1), blob)


def test_the_fingerprint_follows_the_weights(model):
    assert model_fingerprint(model) == model_fingerprint(tiny_model())
    with torch.no_grad():
        model.norm.weight[0] += 1e-3
    assert model_fingerprint(model) != model_fingerprint(tiny_model())


def test_a_damaged_payload_is_refused_not_decoded_wrong(model):
    blob = bytearray(compress_bytes(model, TEXT))
    header = read_header(bytes(blob))
    for offset in (header.header_size, header.header_size + 50, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[offset] ^= 0x10
        with pytest.raises(OmniByteError, match="corrupt"):
            decompress_bytes(model, bytes(damaged))


def test_a_damaged_header_is_refused(model):
    blob = bytearray(compress_bytes(model, TEXT))
    blob[13] ^= 0x01  # the original length
    with pytest.raises(OmniByteError, match="header"):
        decompress_bytes(model, bytes(blob))


def test_a_wrong_checksum_is_refused(model):
    data = b"checksum " * 20
    blob = compress_bytes(model, data)
    header = read_header(blob)
    # a valid header that promises another original: the decoded bytes cannot match it
    forged = blob[:8] + (zlib.crc32(data) ^ 1).to_bytes(4, "little") + blob[12:header.header_size - 2]
    forged += zlib.crc32(forged).to_bytes(4, "little")[:2] + blob[header.header_size:]
    with pytest.raises(OmniByteError, match="checksum"):
        decompress_bytes(model, forged)


@pytest.mark.parametrize("keep", [0, 2, 10, -1])
def test_a_truncated_container_is_refused(model, keep):
    blob = compress_bytes(model, TEXT)
    with pytest.raises(OmniByteError, match="truncated|not an OmniByte"):
        decompress_bytes(model, blob[:keep] if keep >= 0 else blob[:-1])


def test_trailing_bytes_are_refused(model):
    with pytest.raises(OmniByteError, match="unexpected bytes"):
        decompress_bytes(model, compress_bytes(model, TEXT) + b"\x00")


def test_other_files_and_versions_are_refused(model):
    with pytest.raises(OmniByteError, match="not an OmniByte"):
        decompress_bytes(model, b"PK\x03\x04 a zip file")
    blob = bytearray(compress_bytes(model, TEXT))
    blob[3] = 9
    with pytest.raises(OmniByteError, match="version 9"):
        decompress_bytes(model, bytes(blob))


def test_inputs_that_are_not_bytes_are_refused(model):
    with pytest.raises(OmniByteError, match="expected bytes"):
        compress_bytes(model, "text")  # type: ignore[arg-type]
    with pytest.raises(OmniByteError, match="expected the compressed"):
        decompress_bytes(model, None)  # type: ignore[arg-type]


def test_modality_is_guessed_only_when_one_covers_the_file():
    assert guess_modality(TEXT) is Modality.TEXT
    assert guess_modality(IMAGE) is Modality.IMAGE
    assert guess_modality(RANDOM) is Modality.BINARY
    assert guess_modality(b"") is Modality.BINARY


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_round_trip(model, data):
    assert decompress_bytes(model, compress_bytes(model, data)) == data


def test_the_cli_compresses_and_decompresses(capsys, tmp_path):
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    original = tmp_path / "in.bmp"
    original.write_bytes(IMAGE)
    packed, back = tmp_path / "in.omb", tmp_path / "back.bmp"
    assert main(["compress", "--model", str(checkpoint), str(original), str(packed), "--quiet"]) == 0
    assert main(["decompress", "--model", str(checkpoint), str(packed), str(back), "--quiet"]) == 0
    assert back.read_bytes() == IMAGE
    assert "checksum verified" in capsys.readouterr().err


def test_the_cli_refuses_a_damaged_file_in_one_line(capsys, tmp_path):
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    bad = tmp_path / "bad.omb"
    bad.write_bytes(b"OMB\x01 not really")
    assert main(["decompress", "--model", str(checkpoint), str(bad), str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("omnibyte: error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
