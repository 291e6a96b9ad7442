"""What the model is used for besides generation.

- `score`: surprisal and next-byte entropy of every byte of a file (windows of the context).
- `compress`: lossless compression with a range coder driven by the model (`.omb` files).
- `anomaly`: regions of a file that surprise the model far more than the rest.
- `classical`: what gzip, xz, zstd, PNG and FLAC make of the same bytes, the yardstick beside the model.
"""
