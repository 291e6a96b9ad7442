"""The architecture trials' table: each trial run scored on both yardsticks.

Every run in the table trained from random weights on the same data mix, windows and schedule with
the same budget of CPU time (`recipes/trials/*.toml`, `train --cpu-minutes`). Each is scored, in bits
per byte, on the corpus split (`runs/corpus2`'s held-out files, 100 per modality, as `eval`
scores them) and on the real-world yardstick (`benchmarks/real/`: sources that never train), with
the run's steps, tokens and CPU time from its log. Run by hand after the trials:

    python -m benchmarks.architecture_trials runs/trial-flat runs/trial-flat-local runs/trial-patch8 \
        runs/trial-patch4 --json benchmarks/results/architecture-trials.json --md docs/architecture-trials-table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODALITIES = ("text", "image", "audio", "video")
REAL = ("text", "image", "audio")


def run_facts(run: Path) -> dict:
    """Steps, tokens, CPU minutes and throughput from the run's own log and state."""
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    state = json.loads((run / "state.json").read_text())
    cfg = state["train_config"]
    tokens = state["step"] * cfg["batch_size"] * cfg["seq_len"]
    return {"steps": state["step"], "tokens": tokens, "cpu_minutes": round(state.get("cpu_s", 0.0) / 60, 1),
            "tokens_per_cpu_s": round(tokens / max(state.get("cpu_s", 0.0), 1e-9)),
            "final_train_bits_per_token": round(statistics.mean(r["bits_per_token"] for r in steps[-5:]), 3)}


def score(folder: Path, corpus: Path, max_files: int) -> dict:
    import torch

    from omnibyte.model.transformer import BytePredictor
    from omnibyte.training.evaluate import compression_table, real_world_report

    model = BytePredictor.from_pretrained(folder)
    started = time.perf_counter()
    with torch.inference_mode():
        corpus_table = compression_table(model, corpus / "val", max_files=max_files)
        real = real_world_report(model)
    row = {"parameters": model.num_parameters(), "config": model.config.to_dict(),
           "corpus": {m: round(corpus_table[m]["model"], 3) for m in MODALITIES if m in corpus_table},
           "real": {m: round(real["compression"][m]["model"], 3) for m in REAL},
           "real_best_classical": {m: round(real["compression"][m][real["compression"][m]["best_classical"]], 3)
                                   for m in REAL},
           "photo_continuation_over_png": round(real["photo_continuation"]["model_over_png"], 3),
           "score_seconds": round(time.perf_counter() - started, 1)}
    row["corpus_mean"] = round(statistics.mean(row["corpus"].values()), 3)
    row["real_mean"] = round(statistics.mean(row["real"].values()), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trial run folders (the first is the baseline)")
    parser.add_argument("--corpus", type=Path, default=Path("runs/corpus2"))
    parser.add_argument("--max-files", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = {}
    for run in args.runs:
        rows[run.name] = {**run_facts(run), **score(run, args.corpus, args.max_files)}
        print(run.name, json.dumps({k: rows[run.name][k] for k in ("corpus_mean", "real_mean", "real")}))
    baseline = rows[args.runs[0].name]["real_mean"]
    for row in rows.values():
        row["real_mean_over_baseline"] = round(row["real_mean"] / baseline, 3)
    header = ("| trial | parameters | steps | tokens | CPU min | tokens/CPU-s | corpus: text | image | audio | video | "
              "real: text | image | audio | real mean | vs first | photo cont. / PNG |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, r in rows.items():
        c, rl = r["corpus"], r["real"]
        lines.append(f"| {name} | {r['parameters'] / 1e6:.2f} M | {r['steps']:,} | {r['tokens'] / 1e6:.1f} M | "
                     f"{r['cpu_minutes']} | {r['tokens_per_cpu_s']:,} | {c.get('text', '-')} | {c.get('image', '-')} | "
                     f"{c.get('audio', '-')} | {c.get('video', '-')} | {rl['text']} | {rl['image']} | {rl['audio']} | "
                     f"**{r['real_mean']}** | {r['real_mean_over_baseline']:.2f} | "
                     f"{r['photo_continuation_over_png']:.2f} |")
    best = rows[args.runs[0].name]["real_best_classical"]
    lines.append(f"| best classical coder | | | | | | | | | | {best['text']} | {best['image']} | {best['audio']} | "
                 f"{statistics.mean(best.values()):.3f} | | 1.00 |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.md:
        args.md.write_text(table + "\n")


if __name__ == "__main__":
    main()
