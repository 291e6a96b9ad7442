"""OmniByte: one byte-level transformer that continues text, images, audio and video."""
