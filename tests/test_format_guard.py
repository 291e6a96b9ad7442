import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from omnibyte.codecs import BMP_BYTES, Y4M_BYTES, audio_to_wav, decode_audio, decode_image, decode_video
from omnibyte.codecs.image import BMP_HEADER
from omnibyte.codecs.video import Y4M_HEADER
from omnibyte.generation.format_guard import FormatGuard
from omnibyte.training.evaluate import bmp_is_valid, wav_is_valid, y4m_is_valid
from omnibyte.vocab import BYTE_VALUES, VOCAB_SIZE, ControlToken

START = int(ControlToken.DOC_START)
CONTROLS = set(range(BYTE_VALUES, VOCAB_SIZE))


def part(tag):
    return [START, int(tag)]


def allowed(prompt):
    return set(np.flatnonzero(FormatGuard(prompt, 1).allowed()[0]).tolist())


def walk(prompt, choices, limit):
    """Sample by picking, at each step, the allowed token `choice` (mod how many are allowed),
    until a control token or `limit` bytes: the bytes of the part."""
    guard, out = FormatGuard(prompt, 1), []
    for choice in choices:
        options = np.flatnonzero(guard.allowed()[0])
        token = int(options[choice % len(options)])
        if token >= BYTE_VALUES or len(out) == limit:
            break
        guard.feed([token])
        out.append(token)
    return bytes(out), guard


def test_the_header_of_a_picture_is_forced_then_its_pixels_are_free():
    assert allowed(part(ControlToken.IMAGE)) == {BMP_HEADER[0]}
    assert allowed(part(ControlToken.IMAGE) + list(BMP_HEADER[:10])) == {BMP_HEADER[10]}
    # pixels: any byte, but no control token: the picture may not end short
    assert allowed(part(ControlToken.IMAGE) + list(BMP_HEADER) + [7] * 100) == set(range(BYTE_VALUES))
    # complete: only a control token may follow
    assert allowed(part(ControlToken.IMAGE) + list(BMP_HEADER) + [7] * (BMP_BYTES - 54)) == CONTROLS


def test_a_video_gets_its_header_and_a_frame_marker_every_262_bytes():
    prompt = part(ControlToken.VIDEO) + list(Y4M_HEADER)
    assert allowed(prompt) == {ord("F")}
    assert allowed(prompt + list(b"FRAME\n") + [9] * 256) == {ord("F")}
    assert allowed(prompt + list(b"FRAME\n") + [9] * 255) == set(range(BYTE_VALUES))
    assert allowed(prompt + (list(b"FRAME\n") + [9] * 256) * 8) == CONTROLS


def test_a_sound_declares_an_even_plausible_length_and_keeps_it():
    prompt = part(ControlToken.AUDIO) + list(b"RIFF")
    assert allowed(prompt) == set(range(0, 256, 2))  # 36 + samples + pad is even
    assert min(allowed(prompt + [20])) == 1  # a RIFF size under 38 would hold no sample
    assert allowed(prompt + [0x40, 0x10]) == set(range(8))  # under 2**19 bytes: a sound, not a wall
    riff = [0x40, 0x10, 0, 0]
    header_so_far = prompt + riff + list(b"WAVEfmt ") + list(audio_to_wav(np.zeros(1, np.uint8))[16:40])
    # the data size follows from the RIFF size: 0x1040 - 36
    assert allowed(header_so_far) == {(0x1040 - 36) & 0xFF}


def test_a_prompts_odd_sound_gets_its_pad_byte():
    wav = audio_to_wav(np.full(5, 128, np.uint8))  # 5 samples and a pad byte
    assert allowed(part(ControlToken.AUDIO) + list(wav[:-1])) == {0}
    assert allowed(part(ControlToken.AUDIO) + list(wav)) == CONTROLS


def test_a_prompt_that_breaks_the_format_is_left_alone():
    broken = part(ControlToken.IMAGE) + list(b"BM") + [0xEE]  # a wrong file-size byte
    assert allowed(broken) == set(range(VOCAB_SIZE))
    # a new part starts afresh
    assert allowed(broken + [int(ControlToken.IMAGE)]) == {BMP_HEADER[0]}


def test_text_and_finished_documents_are_left_alone():
    assert allowed(part(ControlToken.TEXT) + list(b"hello")) == set(range(VOCAB_SIZE))
    assert allowed(part(ControlToken.IMAGE) + list(BMP_HEADER[:5]) + [int(ControlToken.DOC_END)]) \
        == set(range(VOCAB_SIZE))


def test_mask_sets_only_forbidden_tokens_to_minus_infinity():
    masked = FormatGuard(part(ControlToken.VIDEO), 2).mask(np.zeros((2, VOCAB_SIZE)))
    assert (masked[:, ord("Y")] == 0).all() and np.isinf(masked).sum() == 2 * (VOCAB_SIZE - 1)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([ControlToken.IMAGE, ControlToken.VIDEO]), st.integers(0, 2**32 - 1))
def test_any_walk_the_guard_allows_is_a_file_that_decodes(tag, seed):
    length = BMP_BYTES if tag == ControlToken.IMAGE else Y4M_BYTES
    choices = np.random.default_rng(seed).integers(0, 1 << 30, size=length + 1).tolist()
    data, guard = walk(part(tag), choices, limit=length + 1)
    assert len(data) == length and guard.allowed()[0][BYTE_VALUES:].all()
    if tag == ControlToken.IMAGE:
        assert bmp_is_valid(data) and not decode_image(data).repairs
    else:
        assert y4m_is_valid(data) and not decode_video(data).repairs


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 1 << 30), min_size=48, max_size=48), st.integers(0, 1 << 30))
@example([0] * 4 + [10, 3, 0] + [0] * 41, 5)  # a RIFF size of 0x414: a short sound, walked to its end
def test_any_sound_header_the_guard_allows_is_kept_to_the_end(header_choices, sample_choice):
    data, guard = walk(part(ControlToken.AUDIO), header_choices, limit=44)
    riff_size, data_size = struct.unpack_from("<I", data, 4)[0], struct.unpack_from("<I", data, 40)[0]
    assert riff_size == 36 + data_size and data_size >= 2 and riff_size < 1 << 19
    if data_size <= 20_000:  # walk its samples to the end: a WAV of exactly that length
        body, guard = walk(part(ControlToken.AUDIO) + list(data), [sample_choice] * (data_size + 1),
                           limit=data_size + 1)
        assert len(body) == data_size and guard.allowed()[0][BYTE_VALUES:].all()
        decoded = decode_audio(data + body)
        assert wav_is_valid(data + body) and len(decoded.samples) == data_size and not decoded.repairs


@pytest.mark.parametrize("prompt_bytes", [0, 54, 1000])
def test_a_picture_prompt_is_completed_whatever_its_length(prompt_bytes):
    head = (BMP_HEADER + bytes(range(256)) * 13)[:prompt_bytes]
    data, _ = walk(part(ControlToken.IMAGE) + list(head), [3] * 4000, limit=4000)
    assert bmp_is_valid(head + data)
