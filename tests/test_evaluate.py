from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model

from omnibyte.codecs import audio_to_wav, frames_to_y4m, pixels_to_bmp
from omnibyte.training.corpus import build_corpus
from omnibyte.training.evaluate import (
    bmp_is_valid,
    compression_table,
    format_report,
    text_is_valid,
    wav_is_valid,
    y4m_is_valid,
)

BMP = pixels_to_bmp(np.zeros((32, 32, 3), np.uint8))
WAV = audio_to_wav(np.full(4000, 128, np.uint8))
Y4M = frames_to_y4m(np.zeros((8, 16, 16), np.uint8))


def test_native_files_pass_the_validity_checks():
    assert bmp_is_valid(BMP) and wav_is_valid(WAV) and y4m_is_valid(Y4M) and text_is_valid("héllo".encode(), False)


@pytest.mark.parametrize("check, damaged", [
    (bmp_is_valid, b"XM" + BMP[2:]),
    (bmp_is_valid, BMP[:18] + (64).to_bytes(4, "little") + BMP[22:]),
    (wav_is_valid, b"RIFX" + WAV[4:]),
    (y4m_is_valid, Y4M[:-10]),
    (y4m_is_valid, Y4M.replace(b"W16", b"W17")),
])
def test_damaged_samples_fail_the_validity_checks(check, damaged):
    assert not check(damaged)


def test_text_cut_inside_a_character_counts_only_when_the_cut_was_ours():
    cut = "é".encode()[:1]
    assert text_is_valid(b"ok" + cut, cut_short=True)
    assert not text_is_valid(b"ok" + cut, cut_short=False)
    assert not text_is_valid(b"\xff\xfeok", cut_short=True)


def test_scored_files_are_spread_over_the_whole_split_not_its_first_source():
    from omnibyte.training.evaluate import _spread
    files = [Path(f"{i:05d}.txt") for i in range(751)]
    picked = _spread(files, 100)
    assert len(picked) == 100 == len(set(picked)) and picked[0] == files[0] and picked[-1] == files[-1]
    assert sum(f in files[:90] for f in picked) <= 13  # about its share, not 90 of 100
    assert _spread(files[:5], 100) == files[:5] and _spread(files, None) == files


def test_the_compression_table_compares_the_model_with_classical_coders(tmp_path):
    build_corpus(tmp_path, seed=1, scale=0.02, sources={"shapes", "tones"})
    table = compression_table(tiny_model(), tmp_path / "val", max_files=2)
    assert set(table) == {"image", "audio"}
    assert {"model", "gzip -9", "xz -9", "png"} <= set(table["image"]) and "flac" in table["audio"]
    assert 7 < table["image"]["model"] < 9  # an untrained model is near 8 bits per byte
    assert table["image"]["gzip -9"] < 8
    assert "| image |" in format_report({"compression": table, "validity": {},
                                         "captions": {"image_colour": {"hits": 0, "samples": 1, "share": 0},
                                                      "tone_pitch": {"hits": 0, "samples": 1, "share": 0}}})


def test_nucleus_truncated_samples_are_reported_as_such():
    from omnibyte.training.evaluate import sample_validity

    validity = sample_validity(tiny_model(), count=1, seed=0, sampling={"top_p": 0.5})
    assert set(validity) == {"image", "audio", "text", "video"}
    assert all(row["samples"] == 1 for row in validity.values())
    report = format_report({"compression": {}, "top_p": 0.5, "validity": validity,
                            "captions": {"image_colour": {"hits": 0, "samples": 1, "share": 0},
                                         "tone_pitch": {"hits": 0, "samples": 1, "share": 0}}})
    assert "top-p 0.5" in report and "best classical" not in report
    report = format_report({"compression": {}, "top_p": None, "guidance_scale": 3.0, "valid_utf8": True,
                            "valid_media": True,
                            "validity": validity, "captions": {"image_colour": {"hits": 0, "samples": 1, "share": 0},
                                                               "tone_pitch": {"hits": 0, "samples": 1, "share": 0}}})
    assert "guidance 3" in report and "valid UTF-8" in report and "media formats forced" in report
    assert "top-p" not in report


def test_caption_sensitivity_scores_each_picture_under_four_captions(tmp_path):
    from omnibyte.training.evaluate import caption_sensitivity

    build_corpus(tmp_path, seed=1, scale=0.05, sources={"shapes"}, bare_share=0.0)
    report = caption_sensitivity(tiny_model(), tmp_path / "val", max_files=2)
    assert report["files"] >= 1 and set(report["bits"]) == {"right caption", "wrong shape colour",
                                                                  "wrong background colour", "no caption"}
    # an untrained model still pays about 8 bits a byte, whatever the caption
    for bits in report["bits"].values():
        assert 6 * report["bytes"] < bits < 10 * report["bytes"]
    assert "caption sensitivity" in format_report({"compression": {}, "validity": {},
                                                   "captions": {"image_colour": {"hits": 0, "samples": 1, "share": 0},
                                                                "tone_pitch": {"hits": 0, "samples": 1, "share": 0}},
                                                   "caption_sensitivity": report})
    assert caption_sensitivity(tiny_model(), tmp_path / "nowhere") is None


def test_a_sample_is_judged_on_the_part_it_was_asked_for(monkeypatch):
    """A text sample that goes on into a picture is valid text followed by a picture, not broken
    text; one whose own text is broken is still counted as broken."""
    import omnibyte.training.evaluate as evaluate
    from omnibyte.generation.generate import GenerationResult
    from omnibyte.vocab import Boundary, ControlToken

    went_on = GenerationResult(data=b"a red circle" + BMP, boundaries=[Boundary(12, ControlToken.IMAGE)],
                               stop_reason="doc_end")
    broken = GenerationResult(data=b"ok \xff", boundaries=[Boundary(4, ControlToken.DOC_END)], stop_reason="doc_end")
    monkeypatch.setattr(evaluate, "_results", lambda *args, **kwargs: [went_on, broken])
    text = evaluate.sample_validity(None, count=2)["text"]
    assert (text["valid"], text["samples"], text["went_on_to_another_part"]) == (1, 2, 1)
    assert "| text | 1/2 (50%) | 1 |" in format_report({"compression": {}, "validity": {"text": text},
                                                         "captions": {"image_colour": {"hits": 0, "samples": 1,
                                                                                       "share": 0},
                                                                      "tone_pitch": {"hits": 0, "samples": 1,
                                                                                     "share": 0}}})
