"""What the decoding guards share: one grammar state per sample, fed token by token, that says
which next tokens are allowed; generation masks the rest of the logits before sampling.

utf8_guard.py (text parts) and format_guard.py (picture, sound and video parts) each define only
their state: `feed(token)` and `allowed() -> (vocab,) booleans`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from omnibyte.vocab import VOCAB_SIZE

__all__ = ["SampleGuard", "ANYTHING"]

# what a state returns when it allows every token: masking with it changes nothing, so `mask`
# skips the work (it runs for every byte generated, on the thread a server shares with its pages)
ANYTHING = np.ones(VOCAB_SIZE, dtype=bool)
ANYTHING.flags.writeable = False


class GuardState(Protocol):
    def feed(self, token: int) -> None: ...

    def allowed(self) -> np.ndarray: ...


class SampleGuard:
    """Per sample: follow the tokens so far, then mask next-token logits to what the state allows.

    Started with the prompt (whose tokens are never changed), then `feed` each sampled token.
    """

    def new_state(self) -> GuardState:
        raise NotImplementedError

    def __init__(self, prompt: Sequence[int], num_samples: int) -> None:
        state = self.new_state()
        for token in prompt:
            state.feed(int(token))
        self.states = [copy.deepcopy(state) for _ in range(num_samples)]

    def feed(self, tokens: Sequence[int]) -> None:
        for state, token in zip(self.states, tokens):
            state.feed(int(token))

    def allowed(self) -> np.ndarray:
        """(num_samples, vocab) booleans: the tokens each sample may take next."""
        return np.stack([state.allowed() for state in self.states])

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """Logits (num_samples, vocab) with every token the guard forbids set to -inf."""
        allowed = [state.allowed() for state in self.states]
        if all(each is ANYTHING for each in allowed):
            return logits
        return np.where(allowed[0] if len(allowed) == 1 else np.stack(allowed), logits, -np.inf)
