"""What the shipped checkpoint generates, as committed example outputs:
`python assets/samples/build_samples.py` from the repository root (a few minutes on one core).

- `captioned-images.png`: for each colour of the corpus palette, four images asked for with the
  caption "a <colour> circle on a <other> background", one row per caption, scaled 4x;
- `unconditional-images.png`: sixteen images started from the image tag alone;
- `tone-440hz.wav`: the sound asked for with "a 440 Hz sine tone";
- `text.txt`: four texts started from the text tag alone.

Seeded: the same checkpoint, PyTorch build and thread count give the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from omnibyte.codecs import BMP_BYTES, WAV_BYTES, decode_image  # noqa: E402
from omnibyte.generation.generate import SamplingParams, generate  # noqa: E402
from omnibyte.modality import Modality  # noqa: E402
from omnibyte.model.checkpoints import load_model  # noqa: E402
from omnibyte.training.corpus import COLOURS, shape_caption  # noqa: E402
from omnibyte.vocab import document_tokens  # noqa: E402

SCALE = 4  # 32x32 pictures drawn 128x128, pixels crisp
GAP = 4  # pixels between pictures in a grid


def samples(model, parts: list[tuple[Modality, bytes]], count: int, max_bytes: int, seed: int) -> list[bytes]:
    params = SamplingParams(max_new_bytes=max_bytes, seed=seed, num_samples=count)
    return [r.data for r in generate(model, document_tokens(parts), params)]


def grid(rows: list[list[np.ndarray]]) -> Image.Image:
    """Pictures (32, 32, 3) in rows, scaled up with nearest-neighbour, on a white sheet."""
    size = 32 * SCALE
    sheet = Image.new("RGB", (len(rows[0]) * (size + GAP) + GAP, len(rows) * (size + GAP) + GAP), "white")
    for r, row in enumerate(rows):
        for c, pixels in enumerate(row):
            picture = Image.fromarray(pixels).resize((size, size), Image.NEAREST)
            sheet.paste(picture, (GAP + c * (size + GAP), GAP + r * (size + GAP)))
    return sheet


def main() -> None:
    torch.set_num_threads(1)
    model = load_model()
    names = list(COLOURS)
    rows = []
    for index, colour in enumerate(names):
        background = names[(index + 3) % len(names)]
        caption = shape_caption("circle", colour, background)
        images = samples(model, [(Modality.TEXT, caption.encode()), (Modality.IMAGE, b"")], 4, BMP_BYTES, index)
        rows.append([decode_image(d).pixels for d in images])
        print(caption, file=sys.stderr)
    grid(rows).save(HERE / "captioned-images.png", optimize=True)

    images = samples(model, [(Modality.IMAGE, b"")], 16, BMP_BYTES, 100)
    grid([[decode_image(d).pixels for d in images[i:i + 8]] for i in (0, 8)]).save(
        HERE / "unconditional-images.png", optimize=True)

    (tone,) = samples(model, [(Modality.TEXT, b"a 440 Hz sine tone"), (Modality.AUDIO, b"")], 1, WAV_BYTES, 200)
    (HERE / "tone-440hz.wav").write_bytes(tone)

    texts = samples(model, [(Modality.TEXT, b"")], 4, 400, 300)
    (HERE / "text.txt").write_text("\n\n----\n\n".join(t.decode("utf-8", "backslashreplace") for t in texts) + "\n")


if __name__ == "__main__":
    main()
