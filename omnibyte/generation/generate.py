"""Generation as small functions: logits -> probabilities -> sample, prefill, decode one token,
and `stream_generate`, a generator that yields new bytes in chunks as they are sampled."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch

from omnibyte.errors import OmniByteError
from omnibyte.generation.format_guard import FormatGuard
from omnibyte.generation.utf8_guard import Utf8Guard
from omnibyte.model.compiled_decode import CompiledDecodeStep, compiled_decode_supported
from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import BYTE_VALUES, MODALITY_TAGS, VOCAB_SIZE, Boundary, ControlToken, split_control_tokens

__all__ = [
    "SamplingParams",
    "StopReason",
    "GeneratedChunk",
    "GenerationResult",
    "logits_to_probs",
    "sample_next",
    "prefill",
    "decode_one",
    "PrefilledPrompt",
    "prefill_prompt",
    "guidance_prompt",
    "guided_logits",
    "stream_generate",
    "generate",
]

# Generated output larger than this is refused: a demo never needs more, and the list of
# tokens (and the caller's buffers) must stay bounded.
MAX_NEW_BYTES_LIMIT = 1_000_000
MAX_SAMPLES = 64
MAX_GUIDANCE = 20.0


@dataclass(frozen=True)
class SamplingParams:
    max_new_bytes: int = 256
    # 0 = greedy (always the most likely token)
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    # same seed, same output; None draws fresh randomness
    seed: int | None = None
    stop_at_doc_end: bool = True
    # bytes per yielded chunk: small enough that a UI redraws often, large enough that
    # redrawing does not dominate
    chunk_size: int = 32
    # continuations sampled together as one batch
    num_samples: int = 1
    # classifier-free guidance: next-token log-probabilities are pushed away from those given the
    # prompt's last part alone, towards those given the whole prompt (its caption, say), by this
    # factor; 1 = off (plain sampling), above 1 = follow the earlier parts more closely
    guidance_scale: float = 1.0
    # inside text parts, sample only bytes that keep the text valid UTF-8 (utf8_guard.py)
    valid_utf8: bool = False
    # inside picture, sound and video parts, force the bytes their format fixes (headers, frame
    # markers, lengths) and leave the content to the model (format_guard.py)
    valid_media: bool = False

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise OmniByteError(message)

        if not _is_int(self.max_new_bytes) or not 1 <= self.max_new_bytes <= MAX_NEW_BYTES_LIMIT:
            fail(f"max new bytes must be an integer from 1 to {MAX_NEW_BYTES_LIMIT:,}, got {self.max_new_bytes!r}")
        if not isinstance(self.temperature, (int, float)) or isinstance(self.temperature, bool) \
                or not math.isfinite(self.temperature) or not 0 <= self.temperature <= 100:
            fail(f"temperature must be a number from 0 to 100, got {self.temperature!r}")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            fail(f"top-k must be a positive integer (or unset), got {self.top_k!r}")
        if self.top_p is not None and (not isinstance(self.top_p, (int, float)) or isinstance(self.top_p, bool)
                                       or not 0 < self.top_p <= 1):
            fail(f"top-p must be in (0, 1] (or unset), got {self.top_p!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**63):
            fail(f"seed must be an integer from 0 to 2**63-1 (or unset), got {self.seed!r}")
        if not _is_int(self.chunk_size) or self.chunk_size < 1:
            fail(f"chunk size must be a positive integer, got {self.chunk_size!r}")
        if not _is_int(self.num_samples) or not 1 <= self.num_samples <= MAX_SAMPLES:
            fail(f"number of samples must be an integer from 1 to {MAX_SAMPLES}, got {self.num_samples!r}")
        if not isinstance(self.guidance_scale, (int, float)) or isinstance(self.guidance_scale, bool) \
                or not math.isfinite(self.guidance_scale) or not 0 <= self.guidance_scale <= MAX_GUIDANCE:
            fail(f"guidance scale must be a number from 0 to {MAX_GUIDANCE} (1 = off), got {self.guidance_scale!r}")
        if not isinstance(self.valid_utf8, bool):
            fail(f"valid_utf8 must be True or False, got {self.valid_utf8!r}")
        if not isinstance(self.valid_media, bool):
            fail(f"valid_media must be True or False, got {self.valid_media!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class StopReason(StrEnum):
    """Why a sample stopped (a str, so it compares equal to its value and writes as JSON)."""

    MAX_NEW_BYTES = "max_new_bytes"  # the byte budget was reached
    DOC_END = "doc_end"  # the model ended the document (with stop_at_doc_end)
    MAX_TOKENS = "max_tokens"  # the model kept writing control tokens only
    TIME_LIMIT = "time_limit"  # a caller's time limit (the web demo's), not stream_generate's


@dataclass(frozen=True)
class GeneratedChunk:
    """New output since the previous chunk. Offsets count generated bytes from 0."""

    data: bytes
    boundaries: list[Boundary]
    offset: int  # generated bytes before this chunk
    tokens_done: int  # tokens sampled so far (bytes plus control tokens)
    elapsed_s: float  # since generation started, prefill included
    finished: bool  # this sample's last chunk
    stop_reason: StopReason | None = None  # on the last chunk
    sample: int = 0  # which of params.num_samples this chunk belongs to


@dataclass
class GenerationResult:
    data: bytes = b""
    boundaries: list[Boundary] = field(default_factory=list)
    elapsed_s: float = 0.0
    stop_reason: StopReason | None = None

    @property
    def bytes_per_second(self) -> float:
        return len(self.data) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def logits_to_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None) -> np.ndarray:
    """Next-token probabilities (..., vocab), float64, after temperature, top-k and nucleus
    (top-p) filtering."""
    logits = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-5)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[..., -top_k:].min(axis=-1, keepdims=True)
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        # drop a token when the tokens more likely than it already reach top_p
        drop_sorted = (np.cumsum(sorted_probs, axis=-1) - sorted_probs) >= top_p
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        probs = np.where(drop, 0.0, probs)
        probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def sample_next(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> np.ndarray:
    """One token id per row of logits (B, vocab) -> (B,) int64.

    Sampling is NumPy on the host whatever device the model runs on: a few microseconds for 262
    values where torch.multinomial took ~70, and one seed gives one output on every device path."""
    logits = np.asarray(logits)
    if params.temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)
    probs = logits_to_probs(logits, params.temperature, params.top_k, params.top_p)
    cumulative = np.cumsum(probs, axis=-1)
    # inverse CDF: the first token whose cumulative probability exceeds u; a filtered-out token
    # adds nothing to the sum, so it can never be the first to exceed it
    drawn = rng.random(len(cumulative)) * cumulative[:, -1]
    tokens = (cumulative <= drawn[:, None]).sum(axis=-1)
    return np.minimum(tokens, logits.shape[-1] - 1).astype(np.int64)


def prefill(model: BytePredictor, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
    """Run the prompt (B, T) through the model, filling its KV cache; logits of the last position."""
    return model(tokens, start_pos=start_pos, last_only=True)[:, -1]


def decode_one(model: BytePredictor, token: torch.Tensor, pos: int) -> torch.Tensor:
    """Feed one token (B, 1) at position pos; logits (B, vocab) of the one after it."""
    return model(token, start_pos=pos)[:, -1]


def _within_context(prompt: Sequence[int], context: int) -> list[int]:
    """The prompt as generation reads it: a prompt that fills the context is read from its recent
    half only, so only that much is ever converted (a huge prompt costs nothing beyond its list)."""
    return [int(t) for t in (prompt[-max(1, context // 2):] if len(prompt) >= context else prompt)]


@dataclass(frozen=True)
class PrefilledPrompt:
    """A prompt already read into a KV cache: its tokens, every layer's keys and values, and the
    logits of the token after it. A generation of the same prompt starts from it instead of
    reading the prompt again (the web demo reads an upload while its visitor looks at it)."""

    tokens: tuple[int, ...]
    keys: tuple[torch.Tensor, ...]  # per layer, (n_kv_heads, len(tokens), head_dim)
    values: tuple[torch.Tensor, ...]
    logits: np.ndarray  # (vocab,)


def _read_apart(model: BytePredictor,
                rows: list[list[int]]) -> tuple[list[torch.Tensor], list[torch.Tensor], np.ndarray]:
    """Read token rows of one length through a fork with a cache of its own (PyTorch's prefill
    writes a cache from its first row): each layer's keys and values (B, n_kv_heads, T, head_dim),
    and the logits of the token after each row (B, vocab)."""
    fork = model.fork()
    fork.setup_kv_cache(batch_size=len(rows), max_seq_len=len(rows[0]))
    device = model.tok_embeddings.weight.device
    with torch.inference_mode():
        logits = _to_host(prefill(fork, torch.tensor(rows, dtype=torch.long, device=device)))
    caches = [block.attn.kv_cache for block in fork.blocks]
    return [c.k for c in caches], [c.v for c in caches], logits


def _write_cache(model: BytePredictor, rows: slice, keys: Sequence[torch.Tensor],
                 values: Sequence[torch.Tensor]) -> None:
    """Keys and values (per layer, for the rows or one row for all of them) into rows of the
    model's KV cache, from position 0."""
    for block, k, v in zip(model.blocks, keys, values):
        block.attn.kv_cache.k[rows, :, :k.shape[-2]] = k
        block.attn.kv_cache.v[rows, :, :v.shape[-2]] = v


def prefill_prompt(model: BytePredictor, prompt: Sequence[int]) -> PrefilledPrompt | None:
    """Read `prompt` (as stream_generate would: its recent half when it fills the context) into a
    cache of its own, a fork of the model; None for a model whose cache is not the flat model's
    (the patched one)."""
    tokens = tuple(_within_context(prompt, model.config.max_seq_len))
    if type(model) is not BytePredictor or not tokens:
        return None
    keys, values, logits = _read_apart(model, [list(tokens)])
    return PrefilledPrompt(tokens, tuple(k[0] for k in keys), tuple(v[0] for v in values), logits[0])


def _to_host(logits: torch.Tensor) -> np.ndarray:
    return logits.float().cpu().numpy()


def guidance_prompt(prompt: Sequence[int]) -> list[int] | None:
    """The context classifier-free guidance contrasts with: the prompt's last part alone, as a
    new document (DOC_START, its modality tag, its bytes). None when nothing comes before that
    part, so there is nothing to follow more closely."""
    tags = set(MODALITY_TAGS.values())
    last = max((i for i, t in enumerate(prompt) if int(t) in tags), default=None)
    if last is None or last == 0 or (last == 1 and int(prompt[0]) == ControlToken.DOC_START):
        return None
    return [int(ControlToken.DOC_START)] + [int(t) for t in prompt[last:]]


class _CachedRun:
    """One model with its KV cache over n streams: the prompt is prefilled, then each `advance`
    feeds one token per stream and leaves the next logits in `logits` (n, vocab)."""

    def __init__(self, model: BytePredictor, prompt: list[int], n: int, compiled_step: bool,
                 prefilled: PrefilledPrompt | None = None) -> None:
        self.model, self.context = model, model.config.max_seq_len
        self.keep = max(1, self.context // 2)  # how much of the past survives a slide
        self.device = model.tok_embeddings.weight.device
        self.history = [list(prompt) for _ in range(n)]
        model.setup_kv_cache(batch_size=n)
        if prefilled is not None:  # the prompt was read already: its cache, copied to every stream
            _write_cache(model, slice(0, n), prefilled.keys, prefilled.values)
            self.logits = np.repeat(prefilled.logits[None], n, axis=0)
        else:
            # inference mode is set around each step, never held across a yield: the mode belongs
            # to the thread, and a server may resume the generator from another thread each time
            with torch.inference_mode():
                self.logits = _to_host(prefill(model, torch.tensor([prompt] * n, dtype=torch.long,
                                                                   device=self.device)))
        # built after setup_kv_cache: the step works on the cache's own buffers
        self.step = CompiledDecodeStep(model) if compiled_step and compiled_decode_supported(model) else None
        self.pos = len(prompt)

    def advance(self, token: np.ndarray) -> None:
        for row, token_id in zip(self.history, token.tolist()):
            row.append(token_id)
        if self.pos >= self.context:  # slide: rebuild the cache from the recent past
            recent = torch.tensor([h[-self.keep:] for h in self.history], dtype=torch.long, device=self.device)
            with torch.inference_mode():
                self.logits = _to_host(prefill(self.model, recent))
            self.pos = self.keep
            return
        if self.step is not None:
            self.logits = self.step(token, self.pos)
        else:
            with torch.inference_mode():
                self.logits = _to_host(decode_one(self.model, torch.from_numpy(token)[:, None].to(self.device),
                                                  self.pos))
        self.pos += 1

    def close(self) -> None:
        self.model.clear_kv_cache()


class _GuidedRun:
    """Classifier-free guidance as one batch: the n streams that read the whole prompt and the n
    that read its last part alone share one KV cache, each stream at its own position, so each
    compiled step reads the weights once for both contexts instead of once per context.
    `logits` (2n, vocab): the conditional streams' rows, then the unconditional ones'."""

    def __init__(self, model: BytePredictor, prompt: list[int], unconditional: list[int], n: int,
                 prefilled: PrefilledPrompt | None = None) -> None:
        self.model, self.n, self.context = model, n, model.config.max_seq_len
        self.keep = max(1, self.context // 2)
        self.history = [list(prompt) for _ in range(n)] + [list(unconditional) for _ in range(n)]
        model.setup_kv_cache(batch_size=2 * n)
        self.positions = np.zeros(2 * n, dtype=np.int64)
        self.logits = np.empty((2 * n, model.config.vocab_size), dtype=np.float32)
        self._load(0, prefilled or prefill_prompt(model, prompt))
        self._load(n, prefill_prompt(model, unconditional))
        self.step = CompiledDecodeStep(model)

    def _load(self, first: int, prefilled: PrefilledPrompt) -> None:
        """One context, read once, into rows first..first + n of the shared cache."""
        rows = slice(first, first + self.n)
        _write_cache(self.model, rows, prefilled.keys, prefilled.values)
        self.logits[rows] = prefilled.logits
        self.positions[rows] = len(prefilled.tokens)

    def _refill(self, first: int) -> None:
        """Slide one context: rebuild its rows, each from its own stream's recent past."""
        rows = slice(first, first + self.n)
        keys, values, self.logits[rows] = _read_apart(self.model, [h[-self.keep:] for h in self.history[rows]])
        _write_cache(self.model, rows, keys, values)
        self.positions[rows] = self.keep

    def advance(self, token: np.ndarray) -> None:
        both = np.concatenate([token, token])  # the sampled byte extends both contexts
        for row, token_id in zip(self.history, both.tolist()):
            row.append(token_id)
        full = self.positions >= self.context
        for first in (0, self.n):
            if full[first]:  # slide this context: rebuild its rows from the recent past
                self._refill(first)
        if full.any():
            # the refilled rows have fresh logits; the others still take this step. The refilled
            # rows ride along at their next free position, whose entry their own next step
            # overwrites, and what this step computes for them is dropped
            kept = np.flatnonzero(~full)
            if kept.size:
                stepped = self.step(both, self.positions)
                self.logits[kept] = stepped[kept]
                self.positions[kept] += 1
            return
        self.logits = self.step(both, self.positions)
        self.positions += 1

    def close(self) -> None:
        self.model.clear_kv_cache()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def guided_logits(conditional: np.ndarray, unconditional: np.ndarray, scale: float) -> np.ndarray:
    """Classifier-free guidance on log-probabilities: log p(x|c) + (scale - 1) * (log p(x|c) - log p(x))."""
    cond, uncond = _log_softmax(conditional), _log_softmax(unconditional)
    return uncond + scale * (cond - uncond)


def stream_generate(model: BytePredictor, prompt: Sequence[int], params: SamplingParams,
                    compiled_step: bool = True, prefilled: PrefilledPrompt | None = None) -> Iterator[GeneratedChunk]:
    """Continue `prompt` (token ids), yielding each sample's first token at once, then its new
    bytes every `chunk_size` tokens.

    `params.num_samples` continuations run as one batch: each step reads the weights once for
    all of them (each sample's attention over its own cache is still its own). The work happens only
    while the caller iterates: closing the generator (or dropping it) stops it at once. When
    the context fills, the window slides: the cache is rebuilt from the most recent half of
    the context and generation goes on. On a CPU each step after the prefill runs compiled
    (compiled_decode.py, several times faster there than eager PyTorch) unless `compiled_step`
    is False. With guidance the prompt's last part alone is read beside it, as more streams of the
    same batch (the compiled step) or by a second copy of the model; with `valid_utf8` text parts
    keep to UTF-8's grammar, with `valid_media` pictures, sounds and videos to their formats.
    `prefilled` (from `prefill_prompt`) saves reading the prompt again; one of other tokens is ignored.
    """
    tokens = _within_context(prompt, model.config.max_seq_len)
    if not tokens:
        raise OmniByteError("the prompt is empty: give at least one token (generation normally starts with DOC_START)")
    if any(not 0 <= t < VOCAB_SIZE for t in tokens):
        raise OmniByteError(f"prompt token ids must be in 0-{VOCAB_SIZE - 1}")
    rng = np.random.default_rng(params.seed)  # seed None: fresh randomness
    n = params.num_samples
    # a model that emits only control tokens must still stop
    max_tokens = 2 * params.max_new_bytes + 64
    pending: list[list[int]] = [[] for _ in range(n)]
    offset = [0] * n  # bytes already yielded, per sample
    produced = [0] * n  # bytes sampled, per sample
    finished = [False] * n
    started = time.perf_counter()
    unconditional = guidance_prompt(tokens) if params.guidance_scale != 1 else None
    guards = ([Utf8Guard(tokens, n)] if params.valid_utf8 else []) + \
        ([FormatGuard(tokens, n)] if params.valid_media else [])
    if prefilled is not None and (prefilled.tokens != tuple(tokens) or type(model) is not BytePredictor):
        prefilled = None
    runs: list[_CachedRun | _GuidedRun] = []
    try:
        if unconditional is not None and compiled_step and compiled_decode_supported(model):
            runs.append(_GuidedRun(model, tokens, unconditional, n, prefilled))  # both contexts in one batch
        else:
            runs.append(_CachedRun(model, tokens, n, compiled_step, prefilled))
            if unconditional is not None:
                runs.append(_CachedRun(model.fork(), unconditional, n, compiled_step))  # its own KV cache
        for step in range(1, max_tokens + 1):
            if isinstance(runs[0], _GuidedRun):
                logits = guided_logits(runs[0].logits[:n], runs[0].logits[n:], params.guidance_scale)
            elif len(runs) == 1:
                logits = runs[0].logits
            else:
                logits = guided_logits(runs[0].logits, runs[1].logits, params.guidance_scale)
            for guard in guards:  # they never meet: one rules text parts, the other media parts
                logits = guard.mask(logits)
            token = sample_next(logits, params, rng)  # (n,)
            for guard in guards:
                guard.feed(token.tolist())
            for i, token_id in enumerate(token.tolist()):
                if finished[i]:
                    continue
                pending[i].append(token_id)
                produced[i] += token_id < BYTE_VALUES
                reason = (StopReason.DOC_END if params.stop_at_doc_end and token_id == ControlToken.DOC_END
                          else StopReason.MAX_NEW_BYTES if produced[i] >= params.max_new_bytes
                          else StopReason.MAX_TOKENS if step == max_tokens else None)
                # the first token goes out on its own: a caller shows something as soon as it exists
                if reason is not None or len(pending[i]) >= params.chunk_size or step == 1:
                    data, boundaries = split_control_tokens(pending[i], offset[i])
                    yield GeneratedChunk(data, boundaries, offset[i], step, time.perf_counter() - started,
                                         finished=reason is not None, stop_reason=reason, sample=i)
                    offset[i] += len(data)
                    pending[i] = []
                    finished[i] = reason is not None
            if all(finished):
                return
            for run in runs:
                run.advance(token)
    finally:
        for run in runs:
            run.close()
        if not runs:
            model.clear_kv_cache()


def generate(model: BytePredictor, prompt: Sequence[int], params: SamplingParams,
             compiled_step: bool = True) -> list[GenerationResult]:
    """Run `stream_generate` to the end; one result per sample."""
    results = [GenerationResult() for _ in range(params.num_samples)]
    buffers = [bytearray() for _ in range(params.num_samples)]
    for chunk in stream_generate(model, prompt, params, compiled_step):
        result = results[chunk.sample]
        buffers[chunk.sample] += chunk.data
        result.boundaries.extend(chunk.boundaries)
        result.elapsed_s = chunk.elapsed_s
        result.stop_reason = chunk.stop_reason
    for result, data in zip(results, buffers):
        result.data = bytes(data)
    return results
