from pathlib import Path

import pytest

from omnibyte.codecs import BMP_BYTES, WAV_BYTES, Y4M_BYTES, to_native
from omnibyte.errors import OmniByteError
from omnibyte.generation.prompt import MAX_PROMPT_TOKENS, build_prompt, cut_native
from omnibyte.modality import Modality
from omnibyte.vocab import ControlToken

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def test_caption_then_image_is_text_part_then_image_tag():
    prompt = build_prompt(text="a red circle", ask_for=Modality.IMAGE)
    assert prompt.tokens == [ControlToken.DOC_START, ControlToken.TEXT, *b"a red circle", ControlToken.IMAGE]
    assert prompt.modality == Modality.IMAGE and prompt.part_bytes == b""
    assert prompt.bytes_to_finish == BMP_BYTES
    assert prompt.data == b"a red circle"
    assert [(b.offset, b.token) for b in prompt.boundaries] == [
        (0, ControlToken.DOC_START), (0, ControlToken.TEXT), (12, ControlToken.IMAGE)]


def test_image_upload_keeps_whole_rows_from_the_start_of_the_file():
    prompt = build_prompt(upload=(EXAMPLES / "red-circle.png").read_bytes(), filename="red-circle.png", share=0.5)
    assert prompt.modality == Modality.IMAGE
    assert len(prompt.part_bytes) == 54 + 16 * 96
    assert prompt.bytes_to_finish == BMP_BYTES - (54 + 16 * 96)
    assert any("16 of 32 pixel rows" in note for note in prompt.notes)
    assert any("converted to image" in note for note in prompt.notes)


@pytest.mark.parametrize("share, rows", [(0, 0), (0.01, 0), (0.49, 16), (1, 32)])
def test_image_share_rounds_to_rows(share, rows):
    native = to_native((EXAMPLES / "red-circle.png").read_bytes())
    kept, _ = cut_native(Modality.IMAGE, native.data, share)
    assert len(kept) == 54 + rows * 96


def test_audio_and_video_cut_on_samples_and_frames():
    wav = to_native((EXAMPLES / "melody.wav").read_bytes())
    kept, note = cut_native(Modality.AUDIO, wav.data, 0.25)
    assert len(kept) == 44 + 1000 and "0.12 s" in note
    video = to_native((EXAMPLES / "moving-square.gif").read_bytes())
    assert video.modality == Modality.VIDEO and len(video.data) == Y4M_BYTES
    kept, note = cut_native(Modality.VIDEO, video.data, 0.5)
    assert "4 of 8 frames" in note
    assert len(kept) == Y4M_BYTES - 4 * (6 + 256)
    assert WAV_BYTES == len(wav.data)


def test_text_upload_is_kept_whole_whatever_the_share():
    prompt = build_prompt(upload="héllo wörld".encode(), filename="a.txt", share=0.1)
    assert prompt.part_bytes == "héllo wörld".encode() and prompt.bytes_to_finish is None


def test_raw_mode_feeds_bytes_unchanged_without_a_tag():
    data = (EXAMPLES / "mixed.bin").read_bytes()
    prompt = build_prompt(upload=data, raw=True, share=0.5)
    assert prompt.modality is None
    assert prompt.tokens == [ControlToken.DOC_START, *data[:round(len(data) / 2)]]


def test_huge_raw_prompt_keeps_its_end():
    data = bytes(range(256)) * 400  # 102,400 bytes
    prompt = build_prompt(upload=data, raw=True)
    assert len(prompt.tokens) == MAX_PROMPT_TOKENS and prompt.tokens[-1] == 255
    assert any("only its last" in note for note in prompt.notes)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "nothing to continue"),
    ({"upload": b""}, "empty"),
    ({"upload": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "filename": "x.png"}, "corrupt"),
    ({"upload": bytes(range(256)) * 4, "filename": "x.xyz"}, "unsupported"),
    ({"text": "a", "ask_for": "smell"}, "cannot ask for"),
    ({"text": "a", "ask_for": Modality.BINARY}, "cannot ask for binary"),
    ({"upload": b"abc", "raw": True, "share": 1.5}, "share"),
    ({"text": 5}, "must be a string"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises(OmniByteError, match=message):
        build_prompt(**kwargs)
