"""Rebuild the demo's example files in this folder: `PYTHONPATH=. python assets/examples/build_examples.py`
from the repository root.

Every example is made here from OmniByte's own procedural generators (the same ones the training
corpus uses), so each is ours to ship: a picture, a melody, a moving shape, a short text and a
mixed file (caption + picture + sound, concatenated raw).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from omnibyte.codecs import audio_to_wav, pixels_to_bmp, video_to_gif
from omnibyte.training.corpus import draw_shape, moving_shape, shape_caption, tone

HERE = Path(__file__).resolve().parent

TEXT = """Every file is a stream of bytes. A picture is a header and rows of pixels, a sound is a header
and a run of samples, and a story is a run of letters. A model that reads bytes one at a time can
learn all three, and it can tell where one ends and the next begins.
"""


def to_uint8(wave: np.ndarray) -> np.ndarray:
    """A wave in [-1, 1] as unsigned 8-bit samples (128 is silence)."""
    return np.clip(np.round(wave * 127 + 128), 0, 255).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(7)
    pixels = draw_shape("circle", "red", "blue", rng)  # (32, 32, 3)
    # the image example is a PNG at 4x, as a person would upload it: the app converts it back
    Image.fromarray(pixels.repeat(4, axis=0).repeat(4, axis=1)).save(HERE / "red-circle.png", optimize=True)
    # a rising arpeggio, four notes of 0.125 s: the native 0.5 s of sound
    melody = np.concatenate([tone([440.0 * 2 ** (s / 12)], seconds=0.125) for s in (0, 4, 7, 12)])
    (HERE / "melody.wav").write_bytes(audio_to_wav(to_uint8(melody)))
    frames = moving_shape("square", "right", 255, rng)
    (HERE / "moving-square.gif").write_bytes(video_to_gif(frames, scale=4))
    (HERE / "bytes.txt").write_text(TEXT, encoding="utf-8")
    caption = shape_caption("triangle", "yellow", "green").encode()
    triangle = pixels_to_bmp(draw_shape("triangle", "yellow", "green", rng))
    (HERE / "mixed.bin").write_bytes(caption + triangle + audio_to_wav(to_uint8(tone([523.25], seconds=0.5))))


if __name__ == "__main__":
    main()
