"""How surprised the model is by each byte of a file: surprisal, next-byte entropy, bits per byte.

Two ways to cut what is longer than the context into windows (and `score_alone`, which scores
every byte as part of a short document of its own, for anomaly.py):
- `score_bytes`, for a file: raw bytes, each window of `max_seq_len - len(prefix)` bytes scored
  on its own after the prefix (DOC_START, and evaluation's modality tag), so the first bytes of
  every window are predicted without the window before it. Compression codes the same windows.
- `score_tokens`, for a token stream that already holds its control tokens (the demo's prompt
  plus what the model wrote): windows of the context overlapping by one token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from omnibyte.errors import OmniByteError
from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import ControlToken

__all__ = ["ByteScores", "score_bytes", "score_alone", "score_tokens"]


@dataclass(frozen=True)
class ByteScores:
    surprisal_bits: np.ndarray  # (N,) -log2 p(byte | everything before it in its window)
    entropy_bits: np.ndarray  # (N,) entropy of the model's next-token distribution at that byte

    @property
    def bits_per_byte(self) -> float | None:
        return float(self.surprisal_bits.mean()) if self.surprisal_bits.size else None


def score_bytes(model: BytePredictor, data: bytes, batch_size: int = 4,
                prefix: Sequence[int] = (ControlToken.DOC_START,)) -> ByteScores:
    """Per-byte surprisal and entropy of `data` under `model`.

    Every window starts with `prefix` (default DOC_START; evaluation adds the modality tag).
    """
    prefix = [int(t) for t in prefix]
    window = model.config.max_seq_len - len(prefix)
    starts = range(0, len(data), window)
    full = [s for s in starts if s + window <= len(data)]
    # windows in a batch share one length, so the shorter last window runs on its own
    groups = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
    groups += [[s] for s in starts if s + window > len(data)]
    surprisal = np.zeros(len(data), dtype=np.float64)
    entropy = np.zeros(len(data), dtype=np.float64)
    payload = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    device = model.tok_embeddings.weight.device
    with torch.inference_mode():
        for group in groups:
            length = min(window, len(data) - group[0])
            rows = [np.concatenate([prefix, payload[s:s + length]]) for s in group]
            idx = torch.from_numpy(np.stack(rows)).to(device)  # (B, len(prefix) + length)
            # logits at the last prefix token onwards predict the bytes
            logits = model(idx[:, :-1])[:, len(prefix) - 1:]
            logprobs = torch.log_softmax(logits, dim=-1)  # (B, length, vocab)
            picked = -logprobs.gather(-1, idx[:, len(prefix):, None])[..., 0] / math.log(2)  # (B, length)
            ent = -(logprobs.exp() * logprobs).sum(-1) / math.log(2)  # (B, length)
            for row, start in enumerate(group):
                surprisal[start:start + length] = picked[row].double().cpu().numpy()
                entropy[start:start + length] = ent[row].double().cpu().numpy()
    return ByteScores(surprisal, entropy)


ALONE_PIECE = 64


def score_alone(model: BytePredictor, data: bytes, piece: int = ALONE_PIECE, batch_size: int = 64) -> np.ndarray:
    """Each byte's surprisal (bits) when the bytes around it are a short document of their own:
    `data` cut into pieces of `piece` bytes at two offsets half a piece apart, each scored after
    DOC_START alone; a byte takes the piece where more of that piece comes before it.

    Beside `score_bytes`, this says which bytes their file's context makes harder to predict, not
    easier: content that does not belong where it is (anomaly.py's context rule). The piece must
    be far shorter than the context the model reads in place, or the two say the same: a model
    with an attention window reads in place no more than its window, a few hundred bytes, so
    the pieces are a few dozen bytes."""
    if not isinstance(piece, int) or piece < 2:
        raise OmniByteError(f"a piece must be at least 2 bytes, got {piece!r}")
    piece = min(piece, model.config.max_seq_len - 1)
    payload = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)
    surprisal = np.zeros(len(payload), dtype=np.float64)
    preceding = np.full(len(payload), -1)  # bytes of its piece before each byte, in the piece it took
    device = model.tok_embeddings.weight.device
    for offset in (0, piece // 2):
        cuts = sorted({0, *range(offset, len(payload), piece), len(payload)})
        by_length: dict[int, list[tuple[int, int]]] = {}  # pieces of one length run as one batch
        for start, end in zip(cuts[:-1], cuts[1:]):
            by_length.setdefault(end - start, []).append((start, end))
        with torch.inference_mode():
            for group in by_length.values():
                for first in range(0, len(group), batch_size):
                    rows = group[first:first + batch_size]
                    idx = torch.from_numpy(np.stack([np.concatenate([[ControlToken.DOC_START], payload[a:b]])
                                                     for a, b in rows])).to(device)
                    logprobs = torch.log_softmax(model(idx[:, :-1]), dim=-1)
                    picked = (-logprobs.gather(-1, idx[:, 1:, None])[..., 0] / math.log(2)).double().cpu().numpy()
                    for row, (a, b) in enumerate(rows):
                        before = np.arange(b - a)
                        better = before > preceding[a:b]
                        surprisal[a:b][better] = picked[row][better]
                        preceding[a:b][better] = before[better]
    return surprisal


def score_tokens(model: BytePredictor, tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Surprisal of each token after the first, and the entropy of the prediction it was drawn from (bits).

    A stream longer than the context is scored in windows of the context, each predicted from
    the start of its window only.
    """
    tokens = [int(t) for t in tokens]
    surprisal = np.zeros(len(tokens), dtype=np.float64)
    entropy = np.zeros(len(tokens), dtype=np.float64)
    window = model.config.max_seq_len
    device = model.tok_embeddings.weight.device
    with torch.inference_mode():
        # windows overlap by one token, so every token from the second on is predicted once
        for start in range(0, max(len(tokens) - 1, 0), window - 1):
            idx = torch.tensor([tokens[start:start + window]], dtype=torch.long, device=device)
            logprobs = torch.log_softmax(model(idx[:, :-1]), dim=-1)[0]  # (T-1, vocab)
            picked = -logprobs.gather(-1, idx[0, 1:, None])[:, 0] / math.log(2)
            spread = -(logprobs.exp() * logprobs).sum(-1) / math.log(2)
            surprisal[start + 1:start + idx.size(1)] = picked.double().cpu().numpy()
            entropy[start + 1:start + idx.size(1)] = spread.double().cpu().numpy()
    return surprisal, entropy
