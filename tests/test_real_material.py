import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model
from PIL import Image

from omnibyte.cli import main
from omnibyte.codecs import BMP_BYTES, SAMPLE_RATE, WAV_BYTES, decode_audio, decode_image
from omnibyte.modality import Modality
from omnibyte.training.evaluate import REAL_DIR, format_real_report, real_world_report
from omnibyte.training.real_material import (
    CLIP_SAMPLES,
    HELD_OUT_KITS,
    HELD_OUT_PHOTOS,
    HELD_OUT_PROGRAMS,
    HELD_OUT_PROJECTS,
    _clips,
    _document_pieces,
    _pieces,
    _readable,
    _write_midi,
    is_permissive,
    permissive_projects,
    photo_documents,
    photo_paths,
    photo_view,
    render_midi,
)


@pytest.mark.parametrize("licence, permissive", [
    ("MIT", True), ("BSD-3-Clause", True), ("Apache-2.0 OR MIT", True),
    ("License :: OSI Approved :: BSD License", True),
    ("MPL-2.0 AND MIT", False), ("GPL-2.0-or-later", False), ("LGPL", False), ("", False), ("UNKNOWN", False),
    ("Dual License", False),
])
def test_only_permissive_licences_are_taken(licence, permissive):
    assert is_permissive(licence) is permissive


def test_a_whole_view_is_the_centre_square_shrunk_and_a_crop_is_32_by_32():
    rng = np.random.default_rng(0)
    photo = np.zeros((64, 96, 3), np.uint8)
    photo[:, 16:80] = 200  # the centre square is all 200; the margins left and right are black
    assert (photo_view(photo, rng, whole=True) == 200).all()
    views = [photo_view(photo, rng) for _ in range(20)]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 20  # places, sizes, mirrors and light all vary


def test_photo_documents_never_hold_a_held_out_photo():
    assert set(HELD_OUT_PHOTOS) <= set(photo_paths())  # the packages are installed, so this is a real check
    docs = list(photo_documents(np.random.default_rng(0), views_per_photo=2))
    names = {doc.item.split("/")[0] for doc in docs}
    assert names and not names & set(HELD_OUT_PHOTOS)
    for doc in docs:
        modality, bmp = doc.parts[-1]
        assert modality is Modality.IMAGE and len(bmp) == BMP_BYTES and not decode_image(bmp).repairs
        assert len(doc.parts) == 1 or doc.parts[0][1].startswith(b"a photo: ")


def test_document_pieces_are_whole_lines_within_the_limit_and_lose_nothing():
    text = "".join(f"line {i}: " + "word " * (i % 37) + "\n" for i in range(400)) + "x" * 250
    pieces = list(_document_pieces(text, limit=300))
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 300 for p in pieces)
    assert all(p.endswith("\n") for p in pieces[:-2])


def test_minified_and_binary_files_are_not_documents():
    assert _readable(b"def f():\n    return 1\n" * 20) is not None
    assert _readable(b"var a=1;" * 2000) is None  # one 16 KB line: minified
    assert _readable(b"\x00\x01\x02 binary" * 50) is None
    assert _readable(b"\xff\xfe not utf-8") is None


def test_held_out_projects_never_train_and_every_project_taken_is_permissive():
    from omnibyte.training.real_material import _licence_text, _normalised_name
    training = permissive_projects(held_out=False)
    assert training  # pytest, numpy and the rest are installed
    for dist in training:
        assert _normalised_name(dist.metadata["Name"]) not in HELD_OUT_PROJECTS
        assert is_permissive(_licence_text(dist))


def test_composed_pieces_never_use_a_held_out_instrument():
    rng = np.random.default_rng(0)
    programs = tuple(p for p in range(120) if p not in HELD_OUT_PROGRAMS)
    for _, _, tracks in _pieces(rng, programs, (0, 8), pieces=1, seconds=2.0, ensembles=30):
        for channel, program, events in tracks:
            assert events
            if channel == 9:
                assert program not in HELD_OUT_KITS
            else:
                assert program not in HELD_OUT_PROGRAMS


def test_a_composed_piece_renders_to_native_clips(tmp_path):
    rng = np.random.default_rng(1)
    _, _, tracks = next(_pieces(rng, (0,), (), pieces=1, seconds=2.0, ensembles=0))
    _write_midi(tmp_path / "piece.mid", tracks)
    wave = render_midi(tmp_path / "piece.mid")
    assert len(wave) >= 2 * SAMPLE_RATE and np.abs(wave).max() > 0.01  # a piano playing, not silence
    clips = list(_clips(wave, rng))
    assert clips and all(len(c) == WAV_BYTES for c in clips)
    samples = decode_audio(clips[0]).samples
    assert len(samples) == CLIP_SAMPLES and samples.std() > 1


def test_the_committed_yardstick_has_at_least_30_native_files_per_modality():
    for modality, pattern, size in (("image", "*.bmp", BMP_BYTES), ("audio", "*.wav", WAV_BYTES),
                                    ("text", "*.txt", None)):
        files = sorted((REAL_DIR / modality).glob(pattern))
        assert len(files) >= 30
        if size:
            assert {len(f.read_bytes()) for f in files} == {size}
        else:
            assert all(1000 <= len(f.read_bytes()) <= 4000 for f in files)
            assert {f.name.split("-")[1] for f in files} <= {p.split("-")[0] for p in HELD_OUT_PROJECTS}


@pytest.fixture
def small_yardstick(tmp_path):
    for modality, pattern in (("image", "*.bmp"), ("audio", "*.wav"), ("text", "*.txt")):
        (tmp_path / modality).mkdir()
        for path in sorted((REAL_DIR / modality).glob(pattern))[:2]:
            (tmp_path / modality / path.name).write_bytes(path.read_bytes()[:600] if modality == "text"
                                                          else path.read_bytes())
    return tmp_path


def test_the_real_world_report_sets_the_model_beside_every_classical_coder(small_yardstick, tmp_path):
    grid = tmp_path / "grid.png"
    report = real_world_report(tiny_model(), small_yardstick, grid=grid)
    rows = report["compression"]
    assert set(rows) == {"text", "image", "audio"}
    assert "png" in rows["image"] and "flac" in rows["audio"] and "xz -9" in rows["text"]
    for row in rows.values():
        classical = {k: v for k, v in row.items()
                     if k not in ("files", "bytes", "model", "best_classical", "model_over_best")}
        best = min(classical.values())
        assert row["model_over_best"] == pytest.approx(row["model"] / best)
        assert row["model"] > 7  # an untrained model is no better than chance
    continuation = report["photo_continuation"]
    assert continuation["files"] == 2 and continuation["model_bits_per_byte"] > 7
    with Image.open(grid) as im:
        assert im.size[0] > im.size[1] > 0
    assert "photo continuation" in format_real_report(report)


def test_eval_real_on_the_command_line_writes_its_json(small_yardstick, tmp_path, capsys):
    out = tmp_path / "real.json"
    assert main(["eval", "--preset", "tiny", "--real", str(small_yardstick), "--json", str(out)]) == 0
    assert "| image | 2 |" in capsys.readouterr().out
    assert json.loads(out.read_text())["photo_continuation"]["files"] == 2


def test_eval_needs_a_corpus_or_the_yardstick_and_refuses_a_folder_without_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--preset", "tiny"])
    assert exit_info.value.code == 2
    assert main(["eval", "--preset", "tiny", "--real", str(tmp_path)]) == 1
    assert "no real-world yardstick" in capsys.readouterr().err


def test_the_yardstick_files_are_named_after_held_out_sources_only():
    names = {p.stem.split("-", 1)[1] for p in (REAL_DIR / "image").glob("*.bmp")}
    assert names == set(HELD_OUT_PHOTOS)
    programs = {int(p.stem.split("-")[2]) for p in (REAL_DIR / "audio").glob("*program-*.wav")}
    assert programs == set(HELD_OUT_PROGRAMS)
    assert Path(REAL_DIR / "text" / "LICENSES").is_dir()
