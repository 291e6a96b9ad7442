"""Keep generated text valid UTF-8: which next tokens may follow, byte by byte.

A small byte model puts a little probability on stray high bytes (0x80-0xFF); over a few hundred
sampled bytes that is enough to break most texts, because a lone lead or continuation byte makes
the whole text undecodable. `Utf8Guard` follows each sample through the UTF-8 grammar while it is
inside a text part and, at each step, says which tokens keep it valid; generation masks the rest
before sampling. Outside text parts (images, sounds, raw bytes) it allows everything.

This is a decoding constraint, like grammar-constrained sampling, not something the model learnt:
the evaluation reports text validity with and without it.

The grammar is RFC 3629's table (no overlong forms, no surrogates, nothing above U+10FFFF):

    00-7F
    C2-DF  80-BF
    E0     A0-BF  80-BF          E1-EC, EE-EF  80-BF  80-BF          ED  80-9F  80-BF
    F0     90-BF  80-BF  80-BF   F1-F3  80-BF  80-BF  80-BF          F4  80-8F  80-BF  80-BF
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from omnibyte.generation.sample_guard import ANYTHING, SampleGuard
from omnibyte.vocab import BYTE_VALUES, MODALITY_TAGS, VOCAB_SIZE, ControlToken

__all__ = ["Utf8Guard"]

_CONTINUATION = (0x80, 0xBF)
# lead byte -> (continuation bytes to come, allowed range of the first of them)
_LEADS: dict[int, tuple[int, tuple[int, int]]] = {}
for _lead in range(0xC2, 0xE0):
    _LEADS[_lead] = (1, _CONTINUATION)
for _lead in range(0xE0, 0xF0):
    _LEADS[_lead] = (2, {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F)}.get(_lead, _CONTINUATION))
for _lead in range(0xF0, 0xF5):
    _LEADS[_lead] = (3, {0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(_lead, _CONTINUATION))

# tokens allowed between characters of a text part: ASCII, valid lead bytes, every control token
_BETWEEN_CHARACTERS = np.zeros(VOCAB_SIZE, dtype=bool)
_BETWEEN_CHARACTERS[:0x80] = True
_BETWEEN_CHARACTERS[list(_LEADS)] = True
_BETWEEN_CHARACTERS[BYTE_VALUES:] = True
_MODALITY_TAGS = set(MODALITY_TAGS.values())


@lru_cache(maxsize=None)  # five ranges in all; built once each, not once per sampled byte
def _inside(low: int, high: int) -> np.ndarray:
    allowed = np.zeros(VOCAB_SIZE, dtype=bool)
    allowed[low:high + 1] = True  # bytes only: a control token here would cut a character in two
    return allowed


class _State:
    """One sample's place in the grammar: in a text part or not, and what the next byte may be."""

    __slots__ = ("in_text", "to_come", "next_range")

    def __init__(self) -> None:
        self.in_text = False
        self.to_come = 0  # continuation bytes still owed by the current character
        self.next_range = _CONTINUATION

    def feed(self, token: int) -> None:
        if token >= BYTE_VALUES:
            if token in _MODALITY_TAGS:
                self.in_text = token == ControlToken.TEXT
            elif token == ControlToken.DOC_START or token == ControlToken.DOC_END:
                self.in_text = False
            self.to_come = 0
            return
        if not self.in_text:
            return
        if self.to_come and _CONTINUATION[0] <= token <= _CONTINUATION[1]:
            self.to_come -= 1
            self.next_range = _CONTINUATION
        elif token in _LEADS:
            self.to_come, self.next_range = _LEADS[token]
        else:
            # ASCII, or (only in a prompt) a byte that breaks the grammar: start afresh after it
            self.to_come = 0

    def allowed(self) -> np.ndarray:
        if not self.in_text:
            return ANYTHING
        if self.to_come:
            return _inside(*self.next_range)
        return _BETWEEN_CHARACTERS


class Utf8Guard(SampleGuard):
    """Per sample: follow the tokens so far, then mask next-token logits to valid UTF-8 in text.

    Start it with the prompt (the prompt's own bytes are never changed; a prompt that ends inside
    a character gets that character completed), then `feed` each sampled token.
    """

    def new_state(self) -> _State:
        return _State()
