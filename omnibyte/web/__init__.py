"""The model side of the web demo (`app.py` lays out the UI and calls these).

- `service`: the demo's model loaded once, generation streamed as updates, the finished stream analysed.
- `views`: what the UI shows: live views of the part being written, the byte map, the segments.
"""
