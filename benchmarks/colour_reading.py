"""Does the model read the caption's colour words? Byte by byte, on held-out captioned shapes.

In a 32x32 BMP (bottom row first) two pixels carry the caption: the first pixel, which is the
background, and the first pixel of the shape; every later pixel can be copied from a neighbour.
For each held-out shape picture this scores the picture after its own caption, after the same
caption with the background colour changed and after one with the shape colour changed, and
reports the mean bits of the three bytes of each of those two pixels. A model that reads a word
pays far more for its pixel under the wrong caption; one that does not pays the same.
`caption_sensitivity` in `omnibyte.training.evaluate` gives the same comparison over whole pictures.

    python -m benchmarks.colour_reading --corpus runs/corpus-shapes --files 16 --threads 2
    python -m benchmarks.colour_reading --corpus runs/corpus-low --files 16 --threads 2 --model runs/probe-low
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from omnibyte.modality import Modality
from omnibyte.training.corpus import SHAPES, shape_caption
from omnibyte.training.evaluate import captioned_shapes, changed_colour

HEADER = 54  # bytes of BMP header before the first pixel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus folder with held-out captioned shapes")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from omnibyte.model.checkpoints import load_model
    from omnibyte.tools.score import score_bytes
    from omnibyte.vocab import document_tokens

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    val = args.corpus / "val"
    # stripes cover the whole picture: no shape pixel follows a run of background
    rows = captioned_shapes(val, args.files, sources=("shapes", "shapes-low"),
                            shapes=tuple(shape for shape in SHAPES if shape != "stripes"))
    if not rows:
        print(f"no held-out captioned shapes in {val}", file=sys.stderr)
        return 1

    def bits(shape: str, colour: str, background: str, data: bytes) -> np.ndarray:
        prefix = document_tokens([(Modality.TEXT, shape_caption(shape, colour, background).encode()),
                                  (Modality.IMAGE, b"")])
        return score_bytes(model, data, prefix=prefix).surprisal_bits

    pixels = {name: [] for name in ("background, right caption", "background, its colour changed",
                                    "shape, right caption", "shape, its colour changed")}
    for row in rows:
        data = (val.parent / row["file"]).read_bytes()
        asks = row["asks"]
        stored = np.frombuffer(data[HEADER:], np.uint8).reshape(-1, 3)
        first_shape = HEADER + 3 * int(np.argmax((stored != stored[0]).any(1)))
        data = data[:first_shape + 3]  # nothing after the shape's first pixel is read
        right = bits(asks["shape"], asks["colour"], asks["background"], data)
        wrong_background = bits(asks["shape"], asks["colour"], changed_colour(asks["background"], asks), data)
        wrong_shape = bits(asks["shape"], changed_colour(asks["colour"], asks), asks["background"], data)
        pixels["background, right caption"].append(right[HEADER:HEADER + 3].sum())
        pixels["background, its colour changed"].append(wrong_background[HEADER:HEADER + 3].sum())
        pixels["shape, right caption"].append(right[first_shape:first_shape + 3].sum())
        pixels["shape, its colour changed"].append(wrong_shape[first_shape:first_shape + 3].sum())
    report = {"model": args.model or "assets/checkpoint", "corpus": str(args.corpus), "files": len(rows),
              "mean_bits_per_pixel": {name: round(float(np.mean(values)), 2) for name, values in pixels.items()}}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
