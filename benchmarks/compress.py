"""Compression with the model beside classical compressors, on the held-out split.

For a seeded sample of held-out files per modality (`runs/corpus/val/<modality>/`), each file is
compressed with `omnibyte.tools.compress` (the shipped checkpoint), decompressed and compared byte for
byte, and the same file is compressed with gzip -9, xz -9, zstd -19, PNG (images, Pillow with
optimize) and FLAC (audio, soundfile). Reported per modality, as bits per original byte (lower
is better): every coder's ratio; the model's own estimate (the sum of its surprisal under the
PyTorch float model, the same windows and tag as the coder) beside the coded payload and the
whole container; the share of exact round trips; compress and decompress bytes per second.

The current container (version 5, the deterministic step) is measured beside version 4 (the
fast-math compiled step of the previous release, which decodes only on the CPU that wrote it)
on the same files in the same run, alternately, so sizes and speeds compare fairly. `--generic`
then has a second process, with Numba compiling for its generic x86-64 target (no AVX, no FMA)
and two threads, decompress every version 5 file and compress every original again: the share
of exact round trips and of byte-identical containers across the two targets.

Needs `pip install -r benchmarks/requirements.txt` (zstandard). If runs/corpus is missing,
build it first: `python -m omnibyte corpus --out runs/corpus --seed 0`.

    nice -n 10 python -m benchmarks.compress --threads 1 --generic --json benchmarks/results/compress.json \
        --md benchmarks/results/compress.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODALITIES = {"text": "*.txt", "image": "*.bmp", "audio": "*.wav", "video": "*.y4m"}


def classical_sizes(modality: str, data: bytes) -> dict[str, int]:
    """gzip -9, xz -9 and zstd -19 (as the app reports them), and PNG or FLAC for their modality."""
    import zstandard  # noqa: F401  (required here: without it the package leaves zstd out)

    from omnibyte.tools.classical import classical_sizes as sizes

    return sizes(data, modality if modality in ("image", "audio") else None)


CURRENT, PREVIOUS = 5, 4  # container versions: the deterministic step, the fast-math compiled step


def measure(model, path: Path, modality: str) -> dict:
    from omnibyte.tools.compress import compress_bytes, decompress_bytes, prefix_tokens, read_header
    from omnibyte.tools.score import score_bytes

    data = path.read_bytes()
    row = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "bytes": len(data)}
    for version in (CURRENT, PREVIOUS):
        started = time.perf_counter()
        blob = compress_bytes(model, data, version=version)
        compress_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            exact = decompress_bytes(model, blob) == data
        except Exception as exc:  # a failed round trip is a result to report, not a crash
            print(f"{path}: version {version} round trip failed: {exc}", file=sys.stderr)
            exact = False
        decompress_s = time.perf_counter() - started
        header = read_header(blob)
        result = {"container": len(blob), "payload": sum(header.stream_sizes), "exact": exact,
                  "compress_s": compress_s, "decompress_s": decompress_s}
        if version == CURRENT:
            row.update(tag=header.modality.value, **result)
            row["blob"] = blob  # for --generic; not written to the JSON
        else:
            row[f"v{version}"] = result
    row["estimate_bits"] = float(score_bytes(model, data, prefix=prefix_tokens(header.modality)).surprisal_bits.sum())
    row["classical"] = classical_sizes(modality, data)
    return row


GENERIC_SCRIPT = """
import json, sys, torch
from pathlib import Path
from omnibyte.model.checkpoints import load_model
from omnibyte.tools.compress import compress_bytes, decompress_bytes
model = load_model(None if sys.argv[1] == "-" else sys.argv[1])
results = []
for original, packed in json.loads(sys.stdin.read()):
    data, blob = Path(original).read_bytes(), Path(packed).read_bytes()
    try:
        exact = decompress_bytes(model, blob) == data
    except Exception as exc:
        print(f"{original}: {exc}", file=sys.stderr)
        exact = False
    results.append({"exact": exact, "same_container": compress_bytes(model, data) == blob})
print(json.dumps({"threads": torch.get_num_threads(), "results": results}))
"""


def cross_target(model_arg: Path | None, rows: list[dict]) -> dict:
    """Round trips of the version 5 files through a process compiled for Numba's generic target."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        pairs = []
        for i, row in enumerate(rows):
            packed = Path(folder) / f"{i}.omb"
            packed.write_bytes(row["blob"])
            pairs.append([str(ROOT / row["path"]) if not Path(row["path"]).is_absolute() else row["path"],
                          str(packed)])
        env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(Path(folder) / "numba"),
               "OMP_NUM_THREADS": "2"}
        proc = subprocess.run([sys.executable, "-c", GENERIC_SCRIPT, str(model_arg) if model_arg else "-"],
                              input=json.dumps(pairs), capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
        sys.exit(f"the generic-target process failed:\n{proc.stderr[-3000:]}")
    print(proc.stderr, end="", file=sys.stderr)
    return json.loads(proc.stdout)


def summarise(rows: list[dict]) -> dict:
    size = sum(r["bytes"] for r in rows)
    bpb = lambda total: 8 * total / size  # noqa: E731
    coders = {"omnibyte": bpb(sum(r["container"] for r in rows))}
    for name in rows[0]["classical"]:
        coders[name] = bpb(sum(r["classical"][name] for r in rows))
    classical = {k: v for k, v in coders.items() if k != "omnibyte"}
    best = min(classical, key=classical.get)
    estimate_bytes = sum(r["estimate_bits"] for r in rows) / 8
    previous = [r[f"v{PREVIOUS}"] for r in rows]
    summary = {
        "files": len(rows), "bytes": size, "bits_per_byte": coders, "best_classical": best,
        "beats_best_classical": coders["omnibyte"] < classical[best],
        "estimate_bits_per_byte": bpb(estimate_bytes),
        "payload_over_estimate": sum(r["payload"] for r in rows) / estimate_bytes - 1,
        "container_over_estimate": sum(r["container"] for r in rows) / estimate_bytes - 1,
        "round_trip_exact": sum(r["exact"] for r in rows) / len(rows),
        "compress_bytes_per_s": size / sum(r["compress_s"] for r in rows),
        "decompress_bytes_per_s": size / sum(r["decompress_s"] for r in rows),
        f"v{PREVIOUS}": {
            "bits_per_byte": bpb(sum(p["container"] for p in previous)),
            "payload_over_estimate": sum(p["payload"] for p in previous) / estimate_bytes - 1,
            "round_trip_exact": sum(p["exact"] for p in previous) / len(rows),
            "compress_bytes_per_s": size / sum(p["compress_s"] for p in previous),
            "decompress_bytes_per_s": size / sum(p["decompress_s"] for p in previous),
        },
    }
    summary["container_over_previous"] = (sum(r["container"] for r in rows)
                                          / sum(p["container"] for p in previous) - 1)
    if "generic" in rows[0]:
        summary["generic_round_trip_exact"] = sum(r["generic"]["exact"] for r in rows) / len(rows)
        summary["generic_same_container"] = sum(r["generic"]["same_container"] for r in rows) / len(rows)
    return summary


def markdown(result: dict) -> str:
    names = ["omnibyte", "gzip -9", "xz -9", "zstd -19", "png", "flac"]
    lines = [f"Seed {result['seed']}, {result['files_per_modality']} held-out files per modality (same files for every "
             f"coder), model {result['model']}, {result['threads']} thread(s), {result['machine']}.", "",
             "Bits per original byte (lower is better; OmniByte counts its whole container):", "",
             "| modality | files | bytes | " + " | ".join(names) + " | best classical | OmniByte below it |",
             "|---|---|---|" + "---|" * len(names) + "---|---|"]
    for modality, s in result["modalities"].items():
        cells = [f"{s['bits_per_byte'][n]:.3f}" if n in s["bits_per_byte"] else "-" for n in names]
        lines.append(f"| {modality} | {s['files']} | {s['bytes']:,} | " + " | ".join(cells)
                     + f" | {s['best_classical']} | {'yes' if s['beats_best_classical'] else 'no'} |")
    v = f"v{PREVIOUS}"
    lines += ["", f"Version {CURRENT} (the deterministic step) beside version {PREVIOUS} (the fast-math compiled step, "
                  "this CPU only), same files, same run:", "",
              f"| modality | model estimate (bits/byte) | payload vs estimate (v{CURRENT} / {v}) "
              f"| container vs estimate | v{CURRENT} container vs {v} | round trip exact (v{CURRENT} / {v}) "
              "| generic target: round trip / same file "
              f"| compress B/s (v{CURRENT} / {v}) | decompress B/s (v{CURRENT} / {v}) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for modality, s in result["modalities"].items():
        p = s[v]
        generic = (f"{100 * s['generic_round_trip_exact']:.0f}% / {100 * s['generic_same_container']:.0f}%"
                   if "generic_round_trip_exact" in s else "-")
        lines.append(f"| {modality} | {s['estimate_bits_per_byte']:.3f} | {100 * s['payload_over_estimate']:+.2f}% / "
                     f"{100 * p['payload_over_estimate']:+.2f}% | {100 * s['container_over_estimate']:+.2f}% | "
                     f"{100 * s['container_over_previous']:+.2f}% | {100 * s['round_trip_exact']:.0f}% / "
                     f"{100 * p['round_trip_exact']:.0f}% | {generic} | {s['compress_bytes_per_s']:.0f} / "
                     f"{p['compress_bytes_per_s']:.0f} | {s['decompress_bytes_per_s']:.0f} / "
                     f"{p['decompress_bytes_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "runs" / "corpus")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--files", type=int, default=5, help="held-out files per modality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--generic", action="store_true",
                        help="also round-trip every file in a process compiled for Numba's generic x86-64 target")
    args = parser.parse_args()

    val = args.corpus / "val"
    if not val.is_dir():
        sys.exit(f"no held-out split at {val}: build the corpus first with "
                 f"`python -m omnibyte corpus --out {args.corpus} --seed 0`")
    import torch

    from omnibyte.model.checkpoints import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    result = {"seed": args.seed, "files_per_modality": args.files, "model": str(args.model or "assets/checkpoint"),
              "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
                         f"torch {torch.__version__}",
              "modalities": {}, "files": []}
    picked = {}
    for modality, pattern in MODALITIES.items():
        files = sorted((val / modality).glob(pattern))
        picked[modality] = [files[i] for i in sorted(rng.permutation(len(files))[:args.files])]
    # both steps compiled (or loaded from Numba's cache) before the clock starts
    from omnibyte.tools.compress import compress_bytes

    for version in (CURRENT, PREVIOUS):
        compress_bytes(model, b"warm up", version=version)
    rows = {modality: [measure(model, path, modality) for path in paths] for modality, paths in picked.items()}
    if args.generic:
        everything = [row for modality_rows in rows.values() for row in modality_rows]
        generic = cross_target(args.model, everything)
        result["generic_threads"] = generic["threads"]
        for row, outcome in zip(everything, generic["results"]):
            row["generic"] = outcome
    for modality, modality_rows in rows.items():
        for row in modality_rows:
            row.pop("blob")
        result["files"] += modality_rows
        result["modalities"][modality] = summarise(modality_rows)
        print(f"{modality}: {json.dumps(result['modalities'][modality])}", file=sys.stderr)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
