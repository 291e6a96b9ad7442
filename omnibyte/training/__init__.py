"""Training and evaluation.

- `corpus`: the training corpus (procedural and real sources) as packed token files.
- `real_material`: real photos, rendered instruments and permissively licensed documents, and the
  held-out real-world yardstick.
- `train`: the training loop (resumable, DistributedDataParallel, recipes in `recipes/`).
- `evaluate`: bits per byte beside classical codecs, sample validity, caption colour, continuation.
"""
