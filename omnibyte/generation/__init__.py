"""Generation: prompts, sampling as a streaming generator, and the guards that keep output valid.

- `prompt`: a person's upload and text turned into the model's prompt (`build_prompt`).
- `generate`: `SamplingParams`, `stream_generate` (chunks of bytes as they are written) and
  `generate`, with classifier-free guidance and a KV cache per stream.
- `sample_guard`, `utf8_guard`, `format_guard`: masks over the next token that keep generated
  text valid UTF-8 and generated pictures, sounds and videos well-formed.
"""
