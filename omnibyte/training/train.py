"""Training: packed byte documents, boundary-aware attention, AdamW with warm-up and cosine decay.

One script for one CPU, one GPU or many (`torchrun --nproc_per_node N -m omnibyte train ...`:
DistributedDataParallel, gloo on CPU, NCCL on GPU). Rank 0 logs, evaluates and writes
checkpoints. A run folder holds:

    config.json + model.safetensors   the latest weights (a normal checkpoint folder)
    best/                             the weights with the lowest held-out loss so far
    state.safetensors + state.json    optimizer moments, step and RNG state, for resuming
    train_log.jsonl                   one JSON object per logged step and per evaluation

Nothing is pickled: the resume state is safetensors plus JSON like the weights.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import ControlToken

__all__ = ["TrainConfig", "TokenStream", "train", "lr_at", "load_tokens", "TOKEN_DTYPE"]

# token ids go up to 261, so a corpus file stores them as little-endian uint16
TOKEN_DTYPE = np.dtype("<u2")
STATE_WEIGHTS = "state.safetensors"
STATE_JSON = "state.json"
LOG_FILE = "train_log.jsonl"
OPTIMIZERS = ("adamw", "muon")


@dataclass
class TrainConfig:
    train_tokens: str
    val_tokens: str
    out_dir: str
    preset: str = "demo"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    seq_len: int = 1024
    batch_size: int = 8  # sequences per step per process
    max_steps: int = 2000
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    # "adamw", or "muon": Muon (orthogonalised momentum) for the blocks' weight matrices and AdamW
    # for embeddings, output layer and gains. Muon's step is scaled to AdamW's update size
    # (Moonshot's rule), so the same lr and schedule serve both
    optimizer: str = "adamw"
    grad_clip: float = 1.0
    eval_interval: int = 200
    eval_batches: int = 8
    log_interval: int = 10
    seed: int = 0
    compile: bool = False
    # wall-clock budget: stop cleanly (evaluate, save) once it is spent; None = no limit
    max_minutes: float | None = None
    # a budget of this process's CPU time for the training steps (evaluation excluded): the
    # learning-rate schedule decays over it and the run stops when it is spent, whichever of it and
    # max_steps comes first. Equal-compute trials give every architecture the same budget: CPU
    # time, unlike wall-clock time, does not count what other processes take from a shared machine
    cpu_minutes: float | None = None
    # a checkpoint folder to start from instead of random weights (its config replaces the
    # preset's); a run already in out_dir resumes from its own state instead
    init_from: str | None = None
    # more token files to draw windows from, with the share of windows each gets; train_tokens
    # gets what is left. Lets a run lean on one part of the data (text, say) without a new corpus.
    mix: list[tuple[str, float]] = field(default_factory=list)
    # start every training window at a document start, so a document that fits in a window is
    # seen whole: a caption is always in view of the picture it describes
    align_documents: bool = False
    # with align_documents, whether the --corpus windows are aligned too: False aligns only the
    # --mix streams and lets the main corpus's windows start anywhere, so every offset of its long
    # documents (the end of a sound, say) is still trained when seq_len is shorter than they are
    align_main_corpus: bool = True

    def __post_init__(self) -> None:
        if self.seq_len < 2 or self.batch_size < 1 or self.max_steps < 1:
            raise OmniByteError("train: seq_len >= 2, batch_size >= 1 and max_steps >= 1 are required")
        if not 0 < self.min_lr <= self.lr:
            raise OmniByteError("train: need 0 < min_lr <= lr")
        if self.optimizer not in OPTIMIZERS:
            raise OmniByteError(f"train: optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.max_steps:
            raise OmniByteError("train: warmup_steps must be >= 0 and below max_steps")
        self.mix = [(str(path), float(share)) for path, share in self.mix]
        shares = [share for _, share in self.mix]
        if any(not 0 < share < 1 for share in shares) or sum(shares) >= 1:
            raise OmniByteError("train: each mix share must lie in (0, 1) and together they must stay below 1, "
                                "leaving a share for the main corpus")

    def stream_weights(self) -> list[float]:
        """Shares of windows drawn from train_tokens and from each mix file, in that order."""
        return [1 - sum(share for _, share in self.mix)] + [share for _, share in self.mix]


def load_tokens(path: str | Path) -> np.ndarray:
    """A corpus split: a flat file of uint16 token ids, memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise OmniByteError(f"token file not found: {path}")
    if path.stat().st_size < 2 * TOKEN_DTYPE.itemsize or path.stat().st_size % TOKEN_DTYPE.itemsize:
        raise OmniByteError(f"{path} is not a token file (empty or odd length)")
    tokens = np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
    return tokens


class TokenStream:
    """Random windows of packed token streams, with the document id of every position.

    A new document starts at every DOC_START, so `doc_ids` lets attention stay inside each
    document even though documents are packed back to back. Several streams can be mixed: each
    window comes from stream i with probability weights[i]. With `align_documents` a window
    starts at a DOC_START instead of anywhere (a list: per stream).
    """

    def __init__(self, tokens: np.ndarray | list[np.ndarray], seq_len: int, seed: int,
                 weights: list[float] | None = None, align_documents: bool | list[bool] = False) -> None:
        self.parts = list(tokens) if isinstance(tokens, list) else [tokens]
        for part in self.parts:
            if len(part) < seq_len + 1:
                raise OmniByteError(f"the corpus split has {len(part)} tokens, fewer than one window of {seq_len + 1}")
        if weights is None:
            weights = [1.0] + [0.0] * (len(self.parts) - 1)
        if len(weights) != len(self.parts) or min(weights) < 0 or not sum(weights) > 0:
            raise OmniByteError("TokenStream: one non-negative weight per token stream, not all zero")
        self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.tokens = self.parts[0]
        self.seq_len = seq_len
        self.rng = np.random.default_rng(seed)
        self.starts: list[np.ndarray | None] = [None] * len(self.parts)
        aligned = align_documents if isinstance(align_documents, list) else [align_documents] * len(self.parts)
        if len(aligned) != len(self.parts):
            raise OmniByteError("TokenStream: one align_documents flag per token stream")
        for index, part in enumerate(self.parts):
            if aligned[index]:
                # scanned in pieces: a memory-mapped corpus is not read into memory at once
                found = [offset + np.flatnonzero(np.asarray(part[offset:offset + (1 << 24)]) == ControlToken.DOC_START)
                         for offset in range(0, len(part), 1 << 24)]
                starts = np.concatenate(found)
                starts = starts[starts <= len(part) - seq_len - 1]
                if len(starts) == 0:
                    raise OmniByteError("align_documents: no document starts a full window in a token stream")
                self.starts[index] = starts

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(self.parts) == 1 and self.starts[0] is None:  # the draw older runs resume into
            return self.windows(self.rng.integers(0, len(self.tokens) - self.seq_len, size=batch_size))
        rows = []
        for part_index in self.rng.choice(len(self.parts), size=batch_size, p=self.weights):
            part, starts = self.parts[part_index], self.starts[part_index]
            start = starts[self.rng.integers(len(starts))] if starts is not None \
                else self.rng.integers(0, len(part) - self.seq_len)
            rows.append(np.asarray(part[start:start + self.seq_len + 1], dtype=np.int64))
        return self._split(np.stack(rows))

    def windows(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows of the first stream at the given offsets (held-out evaluation)."""
        return self._split(np.stack([np.asarray(self.tokens[s:s + self.seq_len + 1], dtype=np.int64) for s in starts]))

    @staticmethod
    def _split(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, targets = rows[:, :-1], rows[:, 1:]
        doc_ids = np.cumsum(inputs == ControlToken.DOC_START, axis=1)
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(doc_ids)


def lr_at(step: int, cfg: TrainConfig, cpu_s: float = 0.0) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.min_lr at max_steps, or at the end of
    the CPU budget (cpu_s of it spent) if that comes first."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.cpu_minutes is not None:
        progress = max(progress, min(1.0, cpu_s / (60 * cfg.cpu_minutes)))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


class MuonWithAdamW:
    """Two optimizers stepped as one: torch's Muon for the transformer blocks' weight matrices,
    AdamW for everything else (Muon is made for hidden matrices; embeddings, the output layer and
    1-D gains keep AdamW, as in Keller Jordan's and Moonshot's setups). It offers what the training
    loop and save_state/load_state use: param_groups, zero_grad, step and one state dict whose
    parameter ids run on from Muon's into AdamW's."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.parts = [muon, adamw]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def _sizes(self) -> list[int]:
        return [sum(len(group["params"]) for group in part.param_groups) for part in self.parts]

    def state_dict(self) -> dict[str, Any]:
        state, groups, offset = {}, [], 0
        for part, size in zip(self.parts, self._sizes()):
            saved = part.state_dict()
            state.update({offset + param_id: value for param_id, value in saved["state"].items()})
            groups += [{**group, "params": [offset + i for i in group["params"]]} for group in saved["param_groups"]]
            offset += size
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        offset = 0
        for part, size in zip(self.parts, self._sizes()):
            own = part.state_dict()
            part.load_state_dict({"state": {param_id - offset: value for param_id, value in saved["state"].items()
                                            if offset <= param_id < offset + size},
                                  "param_groups": own["param_groups"]})
            offset += size


def make_optimizer(model: BytePredictor, cfg: TrainConfig) -> torch.optim.Optimizer | MuonWithAdamW:
    # no weight decay on norms' gains (1-D): decaying them towards 0 only fights the norm
    def by_muon(name: str, param: torch.Tensor) -> bool:
        return cfg.optimizer == "muon" and param.dim() == 2 and name.split(".")[0] in ("blocks", "local_blocks")

    in_blocks = [p for name, p in model.named_parameters() if by_muon(name, p)]
    rest = [p for name, p in model.named_parameters() if not by_muon(name, p)]
    decay = [p for p in rest if p.dim() >= 2]
    no_decay = [p for p in rest if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    if not in_blocks:
        return adamw
    muon = torch.optim.Muon(in_blocks, lr=cfg.lr, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw")
    return MuonWithAdamW(muon, adamw)


def save_state(out_dir: Path, model: BytePredictor, optimizer: torch.optim.Optimizer | MuonWithAdamW, step: int,
               stream: TokenStream, best_val: float | None, cfg: TrainConfig, cpu_s: float = 0.0) -> None:
    """Weights plus everything needed to resume, written atomically enough: state files last."""
    from safetensors.torch import save_file

    model.save_pretrained(out_dir)
    tensors: dict[str, torch.Tensor] = {}
    for _, (param_id, state) in enumerate(optimizer.state_dict()["state"].items()):
        for name, value in state.items():
            tensors[f"{param_id}.{name}"] = value.detach().contiguous().cpu().reshape(-1) if value.dim() == 0 \
                else value.detach().contiguous().cpu()
    tensors["torch_rng"] = torch.get_rng_state()
    save_file(tensors, str(out_dir / (STATE_WEIGHTS + ".tmp")))
    os.replace(out_dir / (STATE_WEIGHTS + ".tmp"), out_dir / STATE_WEIGHTS)
    meta = {"step": step, "best_val_loss": best_val, "numpy_rng": stream.rng.bit_generator.state,
            "train_config": asdict(cfg), "cpu_s": cpu_s}
    (out_dir / (STATE_JSON + ".tmp")).write_text(json.dumps(meta, indent=2))
    os.replace(out_dir / (STATE_JSON + ".tmp"), out_dir / STATE_JSON)


def load_state(out_dir: Path, model: BytePredictor, optimizer: torch.optim.Optimizer | MuonWithAdamW,
               stream: TokenStream) -> tuple[int, float | None, float]:
    """Resume from out_dir: weights, optimizer moments, RNG states. Returns (step, best_val, the
    CPU seconds of training steps so far)."""
    from safetensors.torch import load_file

    meta = json.loads((out_dir / STATE_JSON).read_text())
    saved_with = meta.get("train_config", {}).get("optimizer", "adamw")
    resuming_with = "muon" if isinstance(optimizer, MuonWithAdamW) else "adamw"
    if saved_with != resuming_with:  # their moments are of different kinds and parameters
        raise OmniByteError(f"the run in {out_dir} was trained with {saved_with}; resume it with --optimizer "
                            f"{saved_with}, or start a new run from it (--init {out_dir} --out NEW) to switch to "
                            f"{resuming_with}")
    loaded = BytePredictor.from_pretrained(out_dir)
    model.load_state_dict(loaded.state_dict())
    tensors = load_file(str(out_dir / STATE_WEIGHTS))
    torch.set_rng_state(tensors.pop("torch_rng"))
    template = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": template["param_groups"]})
    stream.rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"]), meta["best_val_loss"], float(meta.get("cpu_s", 0.0))


@torch.no_grad()
def validation_loss(model: torch.nn.Module, val: TokenStream, cfg: TrainConfig, device: torch.device) -> float:
    """Mean held-out loss in nats per token over fixed, evenly spaced windows."""
    model.eval()
    span = len(val.tokens) - cfg.seq_len - 1
    count = cfg.eval_batches * cfg.batch_size
    starts = np.linspace(0, span, num=count).astype(np.int64)
    losses = []
    for first in range(0, count, cfg.batch_size):
        x, y, doc_ids = (t.to(device) for t in val.windows(starts[first:first + cfg.batch_size]))
        with _autocast(device):
            logits = model(x, doc_ids=doc_ids)
        losses.append(F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).item())
    model.train()
    return float(np.mean(losses))


def _autocast(device: torch.device):
    # bf16 autocast only on GPU: on this kind of CPU it is slower than fp32
    return (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
            else torch.autocast("cpu", enabled=False))


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device), starting the process group when run under torchrun."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) into cfg.out_dir; returns the final step and losses."""
    from tqdm import tqdm

    rank, world, device = _distributed()
    out_dir = Path(cfg.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + rank)
    if cfg.init_from is not None:
        model = BytePredictor.from_pretrained(cfg.init_from).to(device)  # float32, whatever it was saved in
        config = model.config
        # a module added to trained weights (the value head), or an attention window they learn to
        # work within: every trained weight kept as it was
        if cfg.model_overrides:
            config = replace(config, **cfg.model_overrides)
            grown = BytePredictor.build(config).to(device)
            trained, wanted = model.state_dict(), grown.state_dict()
            if any(name not in wanted or wanted[name].shape != tensor.shape for name, tensor in trained.items()) \
                    or any(not name.startswith("value_head.") for name in set(wanted) - set(trained)):
                raise OmniByteError(f"train: {sorted(cfg.model_overrides)} change the weights of {cfg.init_from} "
                                    f"(trained weights can gain a value head or an attention window, nothing else)")
            grown.load_state_dict(trained, strict=False)
            model = grown
    else:
        config = ModelConfig.from_name(cfg.preset, **cfg.model_overrides)
        model = BytePredictor.build(config).to(device)
    if cfg.seq_len > config.max_seq_len:
        raise OmniByteError(f"train: seq_len {cfg.seq_len} exceeds the model's context {config.max_seq_len}")
    # every process draws its own windows; evaluation windows are fixed
    stream = TokenStream([load_tokens(cfg.train_tokens)] + [load_tokens(path) for path, _ in cfg.mix], cfg.seq_len,
                         seed=cfg.seed * 1000 + rank, weights=cfg.stream_weights(),
                         align_documents=[cfg.align_documents and cfg.align_main_corpus]
                         + [cfg.align_documents] * len(cfg.mix))
    val = TokenStream(load_tokens(cfg.val_tokens), cfg.seq_len, seed=0)
    optimizer = make_optimizer(model, cfg)
    step, best_val, cpu_s = 0, None, 0.0
    if resume and (out_dir / STATE_JSON).is_file():
        step, best_val, cpu_s = load_state(out_dir, model, optimizer, stream)
        if world > 1:  # rank-specific data streams must not repeat each other after a resume
            stream.rng = np.random.default_rng([cfg.seed, rank, step])
    runner: torch.nn.Module = model
    if world > 1:
        runner = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        runner = torch.compile(runner)
    log = (out_dir / LOG_FILE).open("a") if rank == 0 else None
    started = logged_at = time.perf_counter()
    logged_step = step
    tokens_per_step = cfg.batch_size * cfg.seq_len * world
    last_loss = float("nan")
    val_loss = None
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not progress or rank != 0, unit="step", desc="training")
    model.train()
    try:
        while step < cfg.max_steps:
            step_started = time.process_time()
            lr = lr_at(step, cfg, cpu_s)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, doc_ids = (t.to(device) for t in stream.batch(cfg.batch_size))
            with _autocast(device):
                logits = runner(x, doc_ids=doc_ids)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            last_loss = loss.item()
            cpu_s += time.process_time() - step_started
            bar.update(1)
            out_of_time = (cfg.max_minutes is not None and time.perf_counter() - started > 60 * cfg.max_minutes) \
                or (cfg.cpu_minutes is not None and cpu_s >= 60 * cfg.cpu_minutes)
            if rank == 0 and (step % cfg.log_interval == 0 or step == cfg.max_steps):
                now = time.perf_counter()
                record = {"step": step, "loss": last_loss, "bits_per_token": last_loss / math.log(2), "lr": lr,
                          "grad_norm": float(grad_norm), "elapsed_s": round(now - started, 1),
                          "cpu_s": round(cpu_s, 1),
                          "tokens_per_s": round(tokens_per_step * (step - logged_step) / (now - logged_at))}
                logged_step, logged_at = step, now
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.1e}")
            if step % cfg.eval_interval == 0 or step == cfg.max_steps or out_of_time:
                if rank == 0:
                    val_loss = validation_loss(model, val, cfg, device)
                    improved = best_val is None or val_loss < best_val
                    if improved:
                        best_val = val_loss
                        model.save_pretrained(out_dir / "best")
                    save_state(out_dir, model, optimizer, step, stream, best_val, cfg, cpu_s)
                    log.write(json.dumps({"step": step, "val_loss": val_loss, "val_bits_per_token":
                                          val_loss / math.log(2), "best": improved}) + "\n")
                    log.flush()
                if world > 1:
                    dist.barrier()
            if out_of_time:
                break
    finally:
        bar.close()
        if log is not None:
            log.close()
        if world > 1:
            dist.destroy_process_group()
    return {"step": step, "train_loss": last_loss, "val_loss": val_loss, "best_val_loss": best_val}
