"""Compression with the model beside classical compressors, on the held-out split.

For a seeded sample of held-out files per modality (`runs/corpus/val/<modality>/`), each file is
compressed with `omnibyte.compress` (the shipped checkpoint), decompressed and compared byte for
byte, and the same file is compressed with gzip -9, xz -9, zstd -19, PNG (images, Pillow with
optimize) and FLAC (audio, soundfile). Reported per modality, as bits per original byte (lower
is better): every coder's ratio; the model's own estimate (the sum of its surprisal, the same
windows and tag as the coder) beside the coded payload and the whole container; the share of
exact round trips; compress and decompress bytes per second.

Needs `pip install -r benchmarks/requirements.txt` (zstandard). If runs/corpus is missing,
build it first: `python -m omnibyte corpus --out runs/corpus --seed 0`.

    nice -n 10 python benchmarks/compress.py --threads 1 --json benchmarks/results/compress.json \
        --md benchmarks/results/compress.md
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
MODALITIES = {"text": "*.txt", "image": "*.bmp", "audio": "*.wav", "video": "*.y4m"}


def png_size(data: bytes) -> int:
    from PIL import Image

    from omnibyte.codecs import decode_image

    buffer = io.BytesIO()
    Image.fromarray(decode_image(data).pixels).save(buffer, format="PNG", optimize=True)
    return len(buffer.getvalue())


def flac_size(data: bytes) -> int:
    import soundfile as sf

    from omnibyte.codecs import SAMPLE_RATE, decode_audio

    # FLAC has no unsigned 8-bit: centre on 0 and store signed 8-bit
    signed = (decode_audio(data).samples.astype(np.int16) - 128) * 256
    buffer = io.BytesIO()
    sf.write(buffer, signed, SAMPLE_RATE, format="FLAC", subtype="PCM_S8")
    return len(buffer.getvalue())


def classical_sizes(modality: str, data: bytes) -> dict[str, int]:
    """gzip -9, xz -9 and zstd -19 (as the app reports them), and PNG or FLAC for their modality."""
    import zstandard  # noqa: F401  (required here: without it the package leaves zstd out)

    from omnibyte import compress

    sizes = compress.classical_sizes(data)
    if modality == "image":
        sizes["png"] = png_size(data)
    if modality == "audio":
        sizes["flac"] = flac_size(data)
    return sizes


def measure(model, path: Path, modality: str) -> dict:
    from omnibyte.compress import compress_bytes, decompress_bytes, prefix_tokens, read_header
    from omnibyte.score import score_bytes

    data = path.read_bytes()
    started = time.perf_counter()
    blob = compress_bytes(model, data)
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    try:
        exact = decompress_bytes(model, blob) == data
    except Exception as exc:  # a failed round trip is a result to report, not a crash
        print(f"{path}: round trip failed: {exc}", file=sys.stderr)
        exact = False
    decompress_s = time.perf_counter() - started
    header = read_header(blob)
    estimate_bits = float(score_bytes(model, data, prefix=prefix_tokens(header.modality)).surprisal_bits.sum())
    return {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "bytes": len(data),
            "tag": header.modality.value, "container": len(blob), "payload": sum(header.stream_sizes),
            "estimate_bits": estimate_bits, "exact": exact, "compress_s": compress_s,
            "decompress_s": decompress_s, "classical": classical_sizes(modality, data)}


def summarise(rows: list[dict]) -> dict:
    size = sum(r["bytes"] for r in rows)
    bpb = lambda total: 8 * total / size  # noqa: E731
    coders = {"omnibyte": bpb(sum(r["container"] for r in rows))}
    for name in rows[0]["classical"]:
        coders[name] = bpb(sum(r["classical"][name] for r in rows))
    classical = {k: v for k, v in coders.items() if k != "omnibyte"}
    best = min(classical, key=classical.get)
    estimate_bytes = sum(r["estimate_bits"] for r in rows) / 8
    return {
        "files": len(rows), "bytes": size, "bits_per_byte": coders, "best_classical": best,
        "beats_best_classical": coders["omnibyte"] < classical[best],
        "estimate_bits_per_byte": bpb(estimate_bytes),
        "payload_over_estimate": sum(r["payload"] for r in rows) / estimate_bytes - 1,
        "container_over_estimate": sum(r["container"] for r in rows) / estimate_bytes - 1,
        "round_trip_exact": sum(r["exact"] for r in rows) / len(rows),
        "compress_bytes_per_s": size / sum(r["compress_s"] for r in rows),
        "decompress_bytes_per_s": size / sum(r["decompress_s"] for r in rows),
    }


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
    lines += ["", "| modality | model estimate (bits/byte) | payload vs estimate | container vs estimate | "
                  "round trip exact | compress B/s | decompress B/s |", "|---|---|---|---|---|---|---|"]
    for modality, s in result["modalities"].items():
        lines.append(f"| {modality} | {s['estimate_bits_per_byte']:.3f} | {100 * s['payload_over_estimate']:+.2f}% | "
                     f"{100 * s['container_over_estimate']:+.2f}% | {100 * s['round_trip_exact']:.0f}% | "
                     f"{s['compress_bytes_per_s']:.0f} | {s['decompress_bytes_per_s']:.0f} |")
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
    args = parser.parse_args()

    val = args.corpus / "val"
    if not val.is_dir():
        sys.exit(f"no held-out split at {val}: build the corpus first with "
                 f"`python -m omnibyte corpus --out {args.corpus} --seed 0`")
    import torch

    from omnibyte.checkpoints import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    result = {"seed": args.seed, "files_per_modality": args.files, "model": str(args.model or "assets/checkpoint"),
              "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
                         f"torch {torch.__version__}",
              "modalities": {}, "files": []}
    for modality, pattern in MODALITIES.items():
        files = sorted((val / modality).glob(pattern))
        picked = [files[i] for i in sorted(rng.permutation(len(files))[:args.files])]
        rows = [measure(model, path, modality) for path in picked]
        result["files"] += rows
        result["modalities"][modality] = summarise(rows)
        print(f"{modality}: {json.dumps(result['modalities'][modality])}", file=sys.stderr)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
