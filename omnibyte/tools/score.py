"""How surprised the model is by each byte of a file: surprisal, next-byte entropy, bits per byte.

Two ways to cut what is longer than the context into windows:
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

from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import ControlToken

__all__ = ["ByteScores", "score_bytes", "score_tokens"]


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
