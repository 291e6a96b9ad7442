import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omnibyte.generation.utf8_guard import Utf8Guard
from omnibyte.vocab import BYTE_VALUES, VOCAB_SIZE, ControlToken

TEXT = [int(ControlToken.DOC_START), int(ControlToken.TEXT)]
IMAGE = [int(ControlToken.DOC_START), int(ControlToken.IMAGE)]


def allowed_bytes(prompt):
    return set(np.flatnonzero(Utf8Guard(prompt, 1).allowed()[0]).tolist())


def test_between_characters_ascii_valid_leads_and_control_tokens_are_allowed():
    allowed = allowed_bytes(TEXT + list(b"abc"))
    assert set(range(0x80)) <= allowed and set(range(BYTE_VALUES, VOCAB_SIZE)) <= allowed
    assert {0xC2, 0xDF, 0xE0, 0xF4} <= allowed
    # continuation bytes, overlong leads and leads beyond U+10FFFF can never start a character
    assert not allowed & (set(range(0x80, 0xC2)) | set(range(0xF5, 0x100)))


def test_inside_a_character_only_its_continuations_are_allowed():
    assert allowed_bytes(TEXT + [0xC3]) == set(range(0x80, 0xC0))
    assert allowed_bytes(TEXT + [0xE0]) == set(range(0xA0, 0xC0))  # no overlong three-byte forms
    assert allowed_bytes(TEXT + [0xED]) == set(range(0x80, 0xA0))  # no surrogates
    assert allowed_bytes(TEXT + [0xF4]) == set(range(0x80, 0x90))  # nothing above U+10FFFF
    assert allowed_bytes(TEXT + [0xF0, 0x9F, 0x98]) == set(range(0x80, 0xC0))


def test_other_modalities_are_left_alone_and_text_after_them_is_guarded():
    assert allowed_bytes(IMAGE + [0xC3]) == set(range(VOCAB_SIZE))
    assert allowed_bytes(TEXT + list(b"x") + [int(ControlToken.AUDIO)]) == set(range(VOCAB_SIZE))
    assert 0xFF not in allowed_bytes(IMAGE + [1, 2, int(ControlToken.TEXT)])


def test_mask_sets_only_forbidden_tokens_to_minus_infinity():
    guard = Utf8Guard(TEXT + [0xC3], 2)
    logits = np.zeros((2, VOCAB_SIZE))
    masked = guard.mask(logits)
    assert np.isneginf(masked[:, :0x80]).all() and (masked[:, 0x80:0xC0] == 0).all()
    assert np.isneginf(masked[:, BYTE_VALUES:]).all()
    one = Utf8Guard(TEXT + [0xC3], 1).mask(np.zeros((1, VOCAB_SIZE)))  # one sample: the same mask
    assert one.shape == (1, VOCAB_SIZE) and np.array_equal(one, masked[:1])
    # outside text the guard allows everything: the logits come back untouched, not copied
    untouched = np.zeros((2, VOCAB_SIZE))
    assert Utf8Guard(IMAGE + [0xC3], 2).mask(untouched) is untouched


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1_000_000), min_size=1, max_size=200))
def test_any_walk_the_guard_allows_decodes(choices):
    """Whatever allowed token is picked at each step, the text decodes as UTF-8 once the last
    character is complete."""
    guard = Utf8Guard(TEXT, 1)
    out = []
    for choice in choices:
        allowed = np.flatnonzero(guard.allowed()[0])
        allowed = allowed[allowed < BYTE_VALUES]  # stay inside the text part
        token = int(allowed[choice % len(allowed)])
        guard.feed([token])
        out.append(token)
    while guard.states[0].to_come:  # finish the last character
        token = int(np.flatnonzero(guard.allowed()[0])[0])
        guard.feed([token])
        out.append(token)
    bytes(out).decode("utf-8")
