"""Memory of the `reference` preset holding 8,192 tokens: 8 key/value heads (grouped-query, as
published) against 32 (plain multi-head), to check the design card's "47% less memory" claim.

Each variant runs in a fresh process: build the model, allocate the KV cache for the full
context, prefill 8,192 tokens in chunks, and report parameter bytes, KV-cache bytes and the
process's peak resident memory above its baseline.

    python -m benchmarks.memory --json benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(n_kv_heads: int, tokens: int, dtype_name: str, chunk: int) -> dict:
    """Runs inside the child process."""
    import torch

    from omnibyte.model.config import ModelConfig
    from omnibyte.model.transformer import BytePredictor

    torch.set_num_threads(2)
    dtype = getattr(torch, dtype_name)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = ModelConfig.from_name("reference", n_kv_heads=n_kv_heads)
    model = BytePredictor(config).to(dtype).eval()
    model.setup_kv_cache(batch_size=1, max_seq_len=tokens)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    cache_bytes = sum(b.attn.kv_cache.k.nbytes + b.attn.kv_cache.v.nbytes for b in model.blocks)
    ids = torch.randint(0, 256, (1, tokens))
    with torch.inference_mode():
        for start in range(0, tokens, chunk):
            model(ids[:, start:start + chunk], start_pos=start, last_only=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n_kv_heads": n_kv_heads,
        "dtype": dtype_name,
        "tokens": tokens,
        "parameters": model.num_parameters(),
        "parameter_bytes": param_bytes,
        "kv_cache_bytes": cache_bytes,
        "peak_rss_above_baseline_bytes": (peak_kib - baseline_kib) * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--chunk", type=int, default=1024, help="prefill chunk length")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.tokens, args.dtype, args.chunk)))
        return

    rows = []
    for n_kv_heads in (8, 32):
        out = subprocess.run([sys.executable, __file__, "--child", str(n_kv_heads), "--tokens", str(args.tokens),
                              "--dtype", args.dtype, "--chunk", str(args.chunk)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    gqa, mha = rows
    mib = 2**20
    print(f"reference preset, {args.tokens} tokens, {args.dtype}")
    print(f"{'kv heads':>8} {'params MiB':>11} {'KV cache MiB':>13} {'params+cache MiB':>17} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['n_kv_heads']:>8} {r['parameter_bytes'] / mib:>11.1f} {r['kv_cache_bytes'] / mib:>13.1f} "
              f"{(r['parameter_bytes'] + r['kv_cache_bytes']) / mib:>17.1f} "
              f"{r['peak_rss_above_baseline_bytes'] / mib:>13.1f}")
    summary = {
        "kv_cache_reduction": 1 - gqa["kv_cache_bytes"] / mha["kv_cache_bytes"],
        "params_plus_cache_reduction": 1 - (gqa["parameter_bytes"] + gqa["kv_cache_bytes"])
        / (mha["parameter_bytes"] + mha["kv_cache_bytes"]),
        "peak_rss_reduction": 1 - gqa["peak_rss_above_baseline_bytes"] / mha["peak_rss_above_baseline_bytes"],
    }
    print("reduction from 32 to 8 kv heads: " + ", ".join(f"{k} {v:.1%}" for k, v in summary.items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
