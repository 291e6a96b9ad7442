"""Decoding speed of the demo preset: bytes per second of generation on this machine.

Compares, in one run and on the same weights shape:
  - OmniByte with its KV cache, one stream, as `generate` runs it on a CPU: the compiled decode
    step (omnibyte/model/compiled_decode.py, Numba) after a PyTorch prefill;
  - the same with every step in eager PyTorch;
  - the PyTorch path with torch.compile applied from outside (`--compile`; slower here);
  - OmniByte without a cache (every step re-runs the whole prefix), the naive baseline;
  - several samples decoded as one batch (aggregate bytes/s), compiled and in eager PyTorch;
  - Hugging Face transformers' LlamaForCausalLM of the same shape generating with its cache,
    what a user would otherwise pick (`pip install -r benchmarks/requirements.txt`).
Speed does not depend on the weights' values, so untrained weights are used unless --model.

    python -m benchmarks.decode --threads 2 --json benchmarks/results/decode.json
    python -m benchmarks.decode --threads 2 --preset demo-local --json benchmarks/results/decode-local.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from omnibyte.generation.generate import SamplingParams, generate, prefill
from omnibyte.model.checkpoints import load_model
from omnibyte.model.compiled_decode import CompiledDecodeStep
from omnibyte.vocab import document_tokens

PROMPT = document_tokens([(None, b"The quick brown fox jumps over the lazy dog. " * 2)])


def omnibyte_rate(model, new_bytes: int, samples: int = 1, compiled_step: bool = True) -> float:
    params = SamplingParams(max_new_bytes=new_bytes, seed=0, stop_at_doc_end=False, num_samples=samples,
                            chunk_size=64)
    started = time.perf_counter()
    results = generate(model, PROMPT, params, compiled_step=compiled_step)
    return sum(len(r.data) for r in results) / (time.perf_counter() - started)


def compiled_step_ms(model, positions=(100, 600, 1100), calls: int = 20, rounds: int = 50) -> dict[str, float]:
    """Milliseconds per call of the compiled step alone (no sampling) at a few cache positions,
    the fastest of `rounds` rounds: where a byte's time goes, with the VM's noise damped."""
    model.setup_kv_cache(batch_size=1)
    try:
        with torch.inference_mode():
            prefill(model, torch.randint(0, 256, (1, max(positions))))
        step = CompiledDecodeStep(model)
        times = {}
        for pos in positions:
            best = float("inf")
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(calls):
                    step([65], pos)
                best = min(best, (time.perf_counter() - started) / calls)
            times[str(pos)] = best * 1e3
        return times
    finally:
        model.clear_kv_cache()


def uncached_rate(model, new_bytes: int) -> float:
    """Sampling by re-running the whole sequence for every new byte: what 'no KV cache' costs."""
    tokens = torch.tensor([PROMPT])
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(new_bytes):
            probs = torch.softmax(model(tokens)[:, -1, :256], dim=-1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return new_bytes / (time.perf_counter() - started)


def transformers_rate(config, new_bytes: int) -> float | None:
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.mlp_hidden,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.norm_eps, rope_theta=config.rope_base, tie_word_embeddings=False,
        bos_token_id=256, eos_token_id=None, pad_token_id=0,
    )).eval()
    ids = torch.tensor([PROMPT])
    kwargs = dict(max_new_tokens=new_bytes, min_new_tokens=new_bytes, do_sample=True, top_k=0, use_cache=True)
    with torch.inference_mode():
        llama.generate(ids, **{**kwargs, "max_new_tokens": 16, "min_new_tokens": 16})  # warm-up
        torch.manual_seed(0)
        started = time.perf_counter()
        out = llama.generate(ids, **kwargs)
    return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: untrained weights of --preset)")
    parser.add_argument("--preset", default="demo", help="untrained preset to time when no --model (demo-local: "
                        "the demo with a sliding attention window)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bytes", type=int, default=1000, help="bytes generated per measurement")
    parser.add_argument("--uncached-bytes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each measurement")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_model(args.model) if args.model else load_model(preset=args.preset)
    config = model.config
    best = lambda f: max(f() for _ in range(args.repeats))  # noqa: E731 - best of N damps a noisy VM

    omnibyte_rate(model, 64)  # warm-up
    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "model": str(args.model or f"{args.preset} preset"),
        "parameters": model.num_parameters(),
        "bytes": args.bytes,
        "cached": best(lambda: omnibyte_rate(model, args.bytes)),
        "cached_torch_steps": best(lambda: omnibyte_rate(model, args.bytes, compiled_step=False)),
        "uncached": uncached_rate(model, args.uncached_bytes),
        f"batch_{args.batch}_aggregate": best(lambda: omnibyte_rate(model, args.bytes, args.batch)),
        f"batch_{args.batch}_aggregate_torch_steps": best(
            lambda: omnibyte_rate(model, args.bytes, args.batch, compiled_step=False)),
    }
    if args.compile:
        compiled = torch.compile(model, dynamic=True)
        started = time.perf_counter()
        omnibyte_rate(compiled, 64)
        results["torch_compile_seconds"] = time.perf_counter() - started
        results["torch_compile"] = best(lambda: omnibyte_rate(compiled, args.bytes, compiled_step=False))
        results[f"torch_compile_batch_{args.batch}_aggregate"] = best(
            lambda: omnibyte_rate(compiled, args.bytes, args.batch, compiled_step=False))
    results["transformers_llama"] = transformers_rate(config, args.bytes)
    # past an attention window, a step's cost stops growing with its position: 3,600 shows it
    results["compiled_step_ms_at_position"] = compiled_step_ms(
        model, positions=tuple(p for p in (100, 600, 1100, 3600) if p < config.max_seq_len))

    base = results["transformers_llama"]
    print(f"{results['machine']}; {results['model']}, {results['parameters']:,} parameters; "
          f"{args.bytes} bytes per run")
    print(f"{'decoder':<34} {'bytes/s':>9} {'vs transformers':>16}")
    for key, value in results.items():
        if (key.startswith(("cached", "uncached", "batch", "torch_compile", "transformers")) and "seconds" not in key
                and value):
            ratio = f"{value / base:.2f}x" if base else "-"
            print(f"{key:<34} {value:>9,.0f} {ratio:>16}")
    print("compiled step alone, ms at position:",
          ", ".join(f"{pos}: {ms:.3f}" for pos, ms in results["compiled_step_ms_at_position"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
