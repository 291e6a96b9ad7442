"""OmniByte web demo: upload a file or type, watch BytePredictor continue it byte by byte, and see
where each modality begins and ends.

This file only lays out the UI and wires its events to small functions that call the `omnibyte`
package. `build_demo(model)` builds the app around any loaded model (the tests pass a tiny one);
the module-level `demo` that Hugging Face Spaces and `gradio app.py` look for is built on first use
around the shipped checkpoint. `python app.py` serves it on 127.0.0.1:7860, or where the
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT environment variables say (Spaces sets them).
OMNIBYTE_MODEL=DIR runs another checkpoint folder, OMNIBYTE_PRESET=NAME untrained weights.

API: one named endpoint per action, /generate, /describe_prompt, /compress, /decompress and
/inspect; the UI's own events are private.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from omnibyte.codecs import MAX_UPLOAD_BYTES
from omnibyte.errors import OmniByteError, read_file
from omnibyte.generation.generate import SamplingParams, StopReason
from omnibyte.generation.prompt import Prompt, build_prompt
from omnibyte.tools.classical import general_sizes
from omnibyte.tools.compress import compress_bytes, decompress_bytes, read_header
from omnibyte.web.service import (
    DemoModel,
    QueueEstimate,
    analyse_file,
    analyse_stream,
    current_part,
    stream_continuation,
)
from omnibyte.web.views import byte_map_html, live_view, live_view_html, segments_html, surprisal_svg

log = logging.getLogger("omnibyte.app")

MAX_BYTES = 16_384  # the most one generation writes: inside TIME_LIMIT_S on a 2-core CPU
DEFAULT_BYTES = 512  # for text, which has no natural end
TIME_LIMIT_S = 120  # a generation still running after this stops and shows what it has
MAX_GUIDANCE = 8.0
# classifier-free guidance 3: captioned pictures come in the asked colour more often than without
# (MODEL_CARD.md has the figures); a prompt of one part runs plain, so only captioned requests pay for it
DEFAULT_GUIDANCE = 3.0
CONCURRENT_GENERATIONS = 2  # Spaces' free CPU has 2 cores; more would only slow every user down
QUEUE_SIZE = 32  # further users are told the queue is full
AUDIO_FIRST_UPDATE = 2_000  # samples (0.25 s) before the live player appears
LIVE_INTERVAL_S = 0.2  # the live views redraw at most this often; the model never waits for them
QUEUE_POLL_S = 0.02  # how often Gradio's queue looks for a job to start (its own default: every 1 ms)
QUEUE_PROGRESS_POLL_S = 0.05  # and for progress to send (its own: every 10 ms)
PREFILL_AHEAD_TOKENS = 256  # a prompt this long is read as soon as it is described (typed text is not)
EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"
# generated files offered for download; Gradio copies them into its own cache (cleaned below)
OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="omnibyte-app-"))
OUTPUT_MAX_AGE_S = 900
atexit.register(shutil.rmtree, OUTPUT_DIR, ignore_errors=True)

MAX_COMPRESS_BYTES = 16_384  # inside TIME_LIMIT_S even for a checkpoint without an attention window
MAX_INSPECT_BYTES = 65_536  # the Inspect tab scores every byte with the model

ASK_CHOICES = [("continue what is there", "continue"), ("an image", "image"), ("a sound", "audio"),
               ("text", "text"), ("a video", "video")]

CSS = """
.ob-pixels, #live-image img { image-rendering: pixelated; image-rendering: crisp-edges; }
#live-image img { width: 100%; height: 100%; object-fit: contain; }
.ob-segment { margin: 6px 0; padding: 6px 10px; background: var(--block-background-fill); }
.ob-segment-head { font-size: 0.95em; }
.ob-segment-why, .ob-repairs, .ob-caption, .ob-facts, .ob-legend { font-size: 0.82em; opacity: 0.8; }
.ob-repairs { color: #b45309; }
.ob-text, .ob-hex { white-space: pre-wrap; max-height: 320px; overflow: auto; font-size: 0.85em; }
.ob-hex { font-family: monospace; }
.ob-segment img.ob-pixels { width: 256px; }
.ob-bar { position: relative; height: 30px; margin: 4px 0; background: #f3f3f3; }
.ob-bar-piece { position: absolute; top: 0; height: 100%; overflow: hidden; white-space: nowrap; color: white;
  font-size: 11px; line-height: 30px; padding-left: 3px; box-sizing: border-box; border-right: 2px solid #222; }
.ob-bar-prompt { position: absolute; left: 0; top: -4px; height: 4px; background: #777; }
.ob-bar-model { position: absolute; top: -4px; height: 38px; width: 0; border-left: 2px dashed #d62ad0; }
.ob-grid { max-width: 100%; margin-top: 6px; }
.ob-key { display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 8px; vertical-align: middle; }
.ob-key.ob-line { height: 3px; }
"""


# --- errors: what a person can fix is said plainly; a bug is logged and said, and the app serves on


def user_errors(action: str):
    """Report OmniByteError as a Gradio error with its message, and any other exception as an
    internal error (logged with its traceback) that leaves the app running. Works on plain
    functions and on generators (the streaming events)."""

    def wrap(fn):
        def translate(exc: Exception) -> gr.Error:
            if isinstance(exc, OmniByteError):
                return gr.Error(str(exc))
            log.exception("%s failed", action)
            return gr.Error(f"internal error ({type(exc).__name__}: {exc}); the app is still running")

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def stream(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except gr.Error:
                    raise
                except Exception as exc:
                    raise translate(exc) from None
            return stream

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise translate(exc) from None
        return call

    return wrap


# --- adapters: UI values in, package calls, UI values out ----------------------------------------


def read_upload(path: str | None, limit: int = MAX_UPLOAD_BYTES) -> tuple[bytes | None, str | None]:
    """The uploaded file's bytes and name, refusing an oversized file before reading it."""
    if not path:
        return None, None
    name = Path(path).name
    return read_file(path, limit=limit, name=f"the upload {name!r}"), name


def prompt_from_inputs(upload: str | None, raw: bool, share: float, text: str | None, ask: str | None) -> Prompt:
    data, name = read_upload(upload)
    if not isinstance(share, (int, float)) or isinstance(share, bool):
        raise OmniByteError(f"the prompt share must be a percentage from 0 to 100, got {share!r}")
    ask_for = None if ask in (None, "", "continue") else ask
    return build_prompt(text=text or "", upload=data, filename=name, raw=bool(raw), share=share / 100,
                        ask_for=ask_for)


def sampling_from_inputs(max_bytes, temperature, top_k, top_p, seed, stop_at_end=True, guidance=1.0,
                         valid_utf8=False, valid_media=False) -> SamplingParams:
    """The UI's values as SamplingParams: whole numbers made integers, 0 top-k, top-p 1 and seed -1
    meaning off. The demo's own limits (max bytes, guidance) are checked here; what any caller
    must respect, SamplingParams checks. Absurd values are refused with a message, never clamped."""
    def whole(value, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise OmniByteError(f"{what} must be a whole number, got {value!r}")
        return int(value)

    max_bytes = whole(max_bytes, "max bytes")
    if not 1 <= max_bytes <= MAX_BYTES:
        raise OmniByteError(f"max bytes must be a whole number from 1 to {MAX_BYTES:,}, got {max_bytes:,}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 1 <= guidance <= MAX_GUIDANCE:
        raise OmniByteError(f"caption guidance must be from 1 (off) to {MAX_GUIDANCE:g}, got {guidance!r}")
    top_k, seed = whole(top_k, "top-k"), whole(seed, "the seed (-1 for random)")
    return SamplingParams(max_new_bytes=max_bytes, temperature=temperature, top_k=top_k or None,
                          top_p=None if top_p == 1 else top_p, seed=None if seed < 0 else seed,
                          stop_at_doc_end=bool(stop_at_end), chunk_size=16, guidance_scale=float(guidance),
                          valid_utf8=bool(valid_utf8), valid_media=bool(valid_media))


def describe_prompt(model: DemoModel, upload, raw, share, text, ask, described=""):
    """What the inputs make: notes on the conversion, a preview of the prompt's last part, and the
    bytes it takes to finish that part (set as max bytes). `described` is the inputs last
    described: when nothing changed (the text box only lost focus) nothing is redone, so a max
    bytes the person set stays."""
    inputs = repr((upload, raw, share, text, ask))
    if inputs == described:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if not upload and not text and ask in (None, "", "continue"):
        return "", "", gr.skip(), inputs
    try:
        prompt = prompt_from_inputs(upload, raw, share, text, ask)
    except OmniByteError as exc:
        gr.Warning(str(exc))
        return f"**Cannot use this input:** {exc}", "", gr.skip(), inputs
    if len(prompt.tokens) >= PREFILL_AHEAD_TOKENS:
        model.prefill_ahead(prompt.tokens)  # read it now, while the visitor looks: Generate starts at once
    notes = "\n".join(f"- {note}" for note in prompt.notes)
    what = prompt.modality.value if prompt.modality else "raw bytes"
    summary = f"**Prompt:** {len(prompt.tokens):,} tokens; the model continues **{what}**.\n{notes}"
    preview = live_view_html(live_view(prompt.modality, prompt.part_bytes, len(prompt.part_bytes)))
    # a part already complete (or text, which has no end) gets the default budget
    return summary, preview, min(MAX_BYTES, prompt.bytes_to_finish or DEFAULT_BYTES), inputs


def save_output(data: bytes, filename: str) -> str:
    """Write a file for download under its own fresh folder (so names never collide and no name a
    user chose can point anywhere else); folders older than OUTPUT_MAX_AGE_S are removed first."""
    now = time.time()
    for old in OUTPUT_DIR.iterdir():
        if now - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
            shutil.rmtree(old, ignore_errors=True)
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name).lstrip(".") or "file"
    path = Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / safe_name[-100:]
    path.write_bytes(data)
    return str(path)


_EXTENSIONS = {"utf-8": "txt", "ascii": "txt", "bmp": "bmp", "wav": "wav", "y4m": "y4m", "png": "png", "gif": "gif"}
_STOPPED = {StopReason.MAX_NEW_BYTES: "reached max bytes", StopReason.DOC_END: "the model ended the document",
            StopReason.MAX_TOKENS: "the model wrote only control tokens",
            StopReason.TIME_LIMIT: f"stopped at the {TIME_LIMIT_S} s time limit"}


@user_errors("generation")
def run_generation(model: DemoModel, estimate: QueueEstimate, upload, raw, share, text, ask, max_bytes, temperature,
                   top_k, top_p, seed, stop_at_end, guidance=1.0, valid_utf8=True, valid_media=True):
    """Generate live, then analyse: yields updates for progress, the three live views, the byte map,
    the surprisal plot, the segment cards and the download. Timed for the queue's estimate."""
    with estimate.timing():
        yield from _generation(model, upload, raw, share, text, ask, max_bytes, temperature, top_k, top_p, seed,
                               stop_at_end, guidance, valid_utf8, valid_media)


def _generation(model, upload, raw, share, text, ask, max_bytes, temperature, top_k, top_p, seed, stop_at_end,
                guidance, valid_utf8, valid_media):
    prompt = prompt_from_inputs(upload, raw, share, text, ask)
    params = sampling_from_inputs(max_bytes, temperature, top_k, top_p, seed, stop_at_end, guidance, valid_utf8,
                                  valid_media)
    shown_title = shown_kind = None
    audio_samples_shown = 0
    yield (f"Reading the {len(prompt.tokens):,}-token prompt…", *_live_updates(None), "", "", "", None)
    for update in stream_continuation(model, prompt, params, time_limit_s=TIME_LIMIT_S,
                                      min_interval_s=LIVE_INTERVAL_S):
        modality, part = current_part(prompt, update)
        from_prompt = len(prompt.part_bytes) if not update.boundaries else 0
        view = live_view(modality, part, from_prompt)
        audio_now = view.kind == "audio" and (
            (audio_samples_shown == 0 and len(view.audio[1]) >= AUDIO_FIRST_UPDATE) or update.done)
        updates = _live_updates(view, show=view.title != shown_title, audio_now=audio_now, shown_kind=shown_kind)
        shown_title, shown_kind = view.title, view.kind
        if audio_now:
            audio_samples_shown = len(view.audio[1])
        progress = (f"**{len(update.generated):,} / {params.max_new_bytes:,} bytes** · "
                    f"{update.bytes_per_second:,.0f} bytes/s · {update.elapsed_s:.1f} s · {view.caption}")
        if update.done:
            progress += f" · done: {_STOPPED.get(update.stop_reason, '')}. Analysing…"
            if update.stop_reason is StopReason.TIME_LIMIT:
                gr.Warning(f"Generation stopped at the {TIME_LIMIT_S} s time limit; showing what was written.")
        # the byte map, plot, segments and download stay as the first update left them: sent again
        # as the same plain values, not skipped (a skip is an update that rebuilds the component)
        yield (progress, *updates, "", "", "", None)
    analysis = analyse_stream(model, prompt, update.generated, update.boundaries)
    formats = {s.format for s in analysis.segments}
    extension = _EXTENSIONS.get(formats.pop(), "bin") if len(formats) == 1 else "bin"
    download = save_output(analysis.data, f"omnibyte-output.{extension}")
    found = ", ".join(f"{s.modality.value} ({s.format})" for s in analysis.segments) or "nothing"
    progress = progress.replace("Analysing…", f"Found {len(analysis.segments)} segment(s): {found}.")
    yield (progress, *(gr.skip(),) * 3, byte_map_html(analysis), surprisal_svg(analysis),
           segments_html(analysis), download)


def _live_updates(view, show: bool = True, audio_now: bool = False, shown_kind: str | None = None):
    """Updates for the live image, sound and text. A new generation (no view) hides all three;
    showing a view (a new part) sends its component, visible and titled, and hides the kind
    shown before (`shown_kind`). Otherwise only plain values: the visible view's new value,
    None for the hidden ones. An update that changes a component's properties, gr.skip()
    included, makes Gradio rebuild the component and its API schema on the server's event loop,
    which takes the interpreter from the decoding thread; so the caption that changes with
    every update is in the progress line, not in a label. The sound is resent rarely, so the
    player is not reloaded every moment: its skip is the one rebuild left between parts."""
    if view is None:  # a new generation, before the model starts: hide all three
        return (gr.Image(value=None, visible=False), gr.Audio(value=None, visible=False),
                gr.HighlightedText(value=None, visible=False))
    label = f"Live {view.title}"
    values = {"image": view.image, "audio": view.audio if audio_now else None, "text": view.text}
    kinds = {"image": gr.Image, "audio": gr.Audio, "text": gr.HighlightedText}
    updates = []
    for kind, component in kinds.items():
        if show and kind == view.kind:
            updates.append(component(value=values[kind], label=label, visible=True))
        elif show and kind == shown_kind:
            updates.append(component(value=None, visible=False))
        elif kind != view.kind:
            updates.append(None)  # hidden already
        else:
            updates.append(gr.skip() if kind == "audio" and not audio_now else values[kind])
    return tuple(updates)


@user_errors("compression")
def run_compress(model: DemoModel, upload, progress=gr.Progress()):
    """Compress an upload with the model; its size beside gzip and xz, and the .omb to download."""
    data, name = read_upload(upload, limit=MAX_COMPRESS_BYTES)
    if data is None:
        raise OmniByteError("choose a file to compress")
    started = time.perf_counter()
    blob = compress_bytes(model.worker(), data,
                          progress=lambda done, total: progress(done / max(total, 1), desc="coding bytes"))
    seconds = time.perf_counter() - started
    rows = [("OmniByte", len(blob))] + list(general_sizes(data).items())
    table = "\n".join(f"| {tool} | {size:,} | {8 * size / max(len(data), 1):.3f} |" for tool, size in rows)
    report = (f"**{name}**: {len(data):,} bytes, coded in {seconds:.1f} s ({len(data) / seconds:,.0f} bytes/s).\n\n"
              f"| compressor | bytes | bits per byte |\n|---|---|---|\n{table}\n\n"
              f"Decompressing needs this same model ({model.description}).")
    return report, save_output(blob, f"{name}.omb")


@user_errors("decompression")
def run_decompress(model: DemoModel, upload, progress=gr.Progress()):
    """Restore an .omb file made by this model, checked against its checksum."""
    blob, name = read_upload(upload)
    if blob is None:
        raise OmniByteError("choose an .omb file to decompress")
    header = read_header(blob)
    if header.original_size > MAX_COMPRESS_BYTES:
        raise OmniByteError(f"this file holds {header.original_size:,} bytes; the demo restores at most "
                            f"{MAX_COMPRESS_BYTES:,} (use `python -m omnibyte decompress` for larger ones)")
    data = decompress_bytes(model.worker(), blob,
                            progress=lambda done, total: progress(done / max(total, 1), desc="decoding bytes"))
    restored = name[:-4] if name.endswith(".omb") else f"{name}.restored"
    return (f"Restored **{len(data):,} bytes**; the checksum matches the original.",
            save_output(data, restored))


@user_errors("inspection")
def run_inspect(model: DemoModel, upload):
    """Split an upload into its segments and score every byte: the segments as a list, the cards,
    the byte map and the surprisal plot (anomalous regions marked)."""
    data, name = read_upload(upload, limit=MAX_INSPECT_BYTES)
    if data is None:
        raise OmniByteError("choose a file to inspect")
    analysis = analyse_file(model, data)
    found = [segment.to_dict() for segment in analysis.segments]
    return found, byte_map_html(analysis), surprisal_svg(analysis), segments_html(analysis)


# --- layout -------------------------------------------------------------------------------------


def build_demo(model: DemoModel) -> gr.Blocks:
    """The app around `model`: the Continue, Inspect and Compress tabs, queued."""
    intro = (f"# OmniByte\nOne small transformer that reads and writes raw bytes. Give it an image, a sound, text, "
             f"an animated GIF or any file: it continues the bytes live, then a modality detector splits the result "
             f"into segments and shows each as what it is, with where the model itself declared a boundary. "
             f"Running on {model.description}.")
    estimate = QueueEstimate(sharing=CONCURRENT_GENERATIONS)
    with gr.Blocks(title="OmniByte", delete_cache=(600, 1800)) as demo:
        gr.Markdown(intro, elem_id="intro")
        if not model.trained:
            gr.Markdown("⚠️ **These weights are untrained**: the output is random bytes. Set OMNIBYTE_MODEL to a "
                        "checkpoint folder, or leave both variables unset to use the shipped checkpoint.",
                        elem_id="untrained-warning")
        with gr.Tab("Continue", id="continue-tab"):
            with gr.Row():
                with gr.Column(scale=2):
                    upload = gr.File(label=f"Upload a file: image, sound, text, animated GIF or anything "
                                           f"(up to {MAX_UPLOAD_BYTES // 2**20} MiB)", type="filepath",
                                     elem_id="upload")
                    raw = gr.Checkbox(label="Raw bytes: feed the file unchanged (no conversion, no modality tag)",
                                      elem_id="raw")
                    share = gr.Slider(0, 100, value=50, step=1,
                                      label="Prompt share of an image, sound, video or raw file (%)",
                                      info="An image keeps whole pixel rows, a sound its first part, a video whole "
                                           "frames; text is always kept whole.", elem_id="share")
                    text = gr.Textbox(label="Text: a caption, or text to continue", lines=2, elem_id="text",
                                      placeholder="a red circle on a blue background")
                    ask = gr.Dropdown(ASK_CHOICES, value="continue", label="Then ask the model for", elem_id="ask")
                    prompt_info = gr.Markdown(label="Prompt summary", show_label=False, elem_id="prompt-info")
                    prompt_preview = gr.HTML(label="Prompt preview", elem_id="prompt-preview")
                    with gr.Accordion("Sampling", open=False):
                        max_bytes = gr.Slider(1, MAX_BYTES, value=DEFAULT_BYTES, step=1, label="Max bytes",
                                              info="Set to what finishes the part when the prompt changes.",
                                              elem_id="max-bytes")
                        temperature = gr.Slider(0, 2, value=1.0, step=0.05,
                                                label="Temperature (0 = always the likeliest)", elem_id="temperature")
                        top_k = gr.Slider(0, 262, value=0, step=1, label="Top-k (0 = off)", elem_id="top-k")
                        # 0.9: with the tail of unlikely bytes cut off, every one of 32 unconditional pictures and
                        # sounds decodes (against 31% and 47% at 1; README, model card)
                        top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label="Top-p (1 = off)", elem_id="top-p")
                        seed = gr.Number(value=0, precision=0, label="Seed (same seed, same output; -1 = random)",
                                         elem_id="seed")
                        stop_at_end = gr.Checkbox(value=True, label="Stop where the model ends the document",
                                                  elem_id="stop-at-end")
                        guidance = gr.Slider(1, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5,
                                             label="Caption guidance (1 = off)",
                                             info="Follow a caption more closely: the model also reads the last part "
                                                  "alone, and the difference is amplified. Twice the work per byte.",
                                             elem_id="guidance")
                        valid_utf8 = gr.Checkbox(value=True, label="Keep generated text valid UTF-8",
                                                 info="Inside text parts, sample only bytes that keep the text "
                                                      "decodable.", elem_id="valid-utf8")
                        valid_media = gr.Checkbox(value=True,
                                                  label="Keep generated pictures, sounds and videos well-formed",
                                                  info="Force the bytes their formats fix (headers, frame markers, "
                                                       "lengths); the pixels and samples are the model's.",
                                                  elem_id="valid-media")
                    with gr.Row():
                        generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                        stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Column(scale=3):
                    progress = gr.Markdown("Press **Generate**.", label="Progress", show_label=False,
                                           elem_id="progress")
                    live_image = gr.Image(label="Live image", format="png", interactive=False, visible=False,
                                          height=300, elem_id="live-image")
                    live_audio = gr.Audio(label="Live sound", interactive=False, visible=False, elem_id="live-audio")
                    live_text = gr.HighlightedText(label="Live text",
                                                   color_map={"prompt": "#d9d9d9", "generated": "#9ecae1"},
                                                   show_legend=True, visible=False, elem_id="live-text")
                    byte_map = gr.HTML(label="Byte map", elem_id="byte-map")
                    plot = gr.HTML(label="Surprisal plot", elem_id="surprisal-plot")
                    segments = gr.HTML(label="Segments", elem_id="segments")
                    download = gr.File(label="The whole stream (prompt + generated)", interactive=False,
                                       elem_id="download")
            prompt_inputs = [upload, raw, share, text, ask]
            gr.Examples(
                examples=[
                    [str(EXAMPLES / "red-circle.png"), False, 50, "", "continue"],
                    [str(EXAMPLES / "melody.wav"), False, 50, "", "continue"],
                    [str(EXAMPLES / "bytes.txt"), False, 100, "", "continue"],
                    [str(EXAMPLES / "mixed.bin"), True, 70, "", "continue"],
                    [None, False, 50, "a red circle on a blue background", "image"],
                    [str(EXAMPLES / "moving-square.gif"), False, 50, "", "continue"],
                ],
                example_labels=["an image to continue", "a sound", "a text", "a mixed file (raw)",
                                "a caption, then an image", "an animated GIF"],
                inputs=prompt_inputs, elem_id="examples")

            described = gr.State("")  # the inputs describe_prompt last answered for
            gr.on([upload.change, raw.change, share.release, ask.change, text.change],
                  functools.partial(describe_prompt, model),
                  [*prompt_inputs, described], [prompt_info, prompt_preview, max_bytes, described],
                  show_progress="hidden", api_name="describe_prompt")
            run_event = generate_button.click(
                functools.partial(run_generation, model, estimate),
                [*prompt_inputs, max_bytes, temperature, top_k, top_p, seed, stop_at_end, guidance, valid_utf8,
                 valid_media],
                [progress, live_image, live_audio, live_text, byte_map, plot, segments, download],
                concurrency_limit=CONCURRENT_GENERATIONS, concurrency_id="generate", time_limit=TIME_LIMIT_S + 60,
                api_name="generate", show_progress="minimal")
            stop_button.click(None, None, None, cancels=[run_event], api_visibility="private")

        with gr.Tab("Inspect", id="inspect-tab"):
            gr.Markdown(f"Where one modality ends and the next begins, and which bytes surprise the model: the "
                        f"modality detector splits any file (up to {MAX_INSPECT_BYTES // 1024} KiB here; "
                        f"`python -m omnibyte detect` and `anomalies` take any size) and the model scores every "
                        f"byte.")
            with gr.Row():
                with gr.Column(scale=2):
                    inspect_upload = gr.File(label="A file to inspect", type="filepath", elem_id="inspect-upload")
                    inspect_button = gr.Button("Inspect", variant="primary", elem_id="inspect")
                    found_segments = gr.JSON(label="Segments found", elem_id="inspect-found")
                with gr.Column(scale=3):
                    inspect_map = gr.HTML(label="Byte map", elem_id="inspect-map")
                    inspect_plot = gr.HTML(label="Surprisal plot", elem_id="inspect-plot")
                    inspect_cards = gr.HTML(label="Segments", elem_id="inspect-segments")
            inspect_button.click(functools.partial(run_inspect, model), inspect_upload,
                                 [found_segments, inspect_map, inspect_plot, inspect_cards],
                                 concurrency_id="generate", time_limit=TIME_LIMIT_S + 60, api_name="inspect")

        with gr.Tab("Compress", id="compress-tab"):
            gr.Markdown(f"Lossless compression with the model: a range coder driven by its next-byte probabilities. "
                        f"Files up to {MAX_COMPRESS_BYTES:,} bytes here (`python -m omnibyte compress` takes any "
                        f"size). A compressed file restores on any machine with the same model, here or with "
                        f"`python -m omnibyte decompress`, and never silently wrong: it carries a checksum of the "
                        f"original.")
            with gr.Row():
                with gr.Column():
                    compress_upload = gr.File(label="A file to compress", type="filepath", elem_id="compress-upload")
                    compress_button = gr.Button("Compress", variant="primary", elem_id="compress")
                    compress_report = gr.Markdown(label="Compression report", show_label=False,
                                                  elem_id="compress-report")
                    compressed_file = gr.File(label="Compressed (.omb)", interactive=False, elem_id="compressed-file")
                with gr.Column():
                    decompress_upload = gr.File(label="An .omb file to restore", type="filepath",
                                                elem_id="decompress-upload")
                    decompress_button = gr.Button("Decompress", elem_id="decompress")
                    decompress_report = gr.Markdown(label="Decompression report", show_label=False,
                                                    elem_id="decompress-report")
                    restored_file = gr.File(label="Restored", interactive=False, elem_id="restored-file")
            compress_button.click(functools.partial(run_compress, model), compress_upload,
                                  [compress_report, compressed_file], concurrency_id="generate",
                                  time_limit=TIME_LIMIT_S + 60, api_name="compress")
            decompress_button.click(functools.partial(run_decompress, model), decompress_upload,
                                    [decompress_report, restored_file], concurrency_id="generate",
                                    time_limit=TIME_LIMIT_S + 60, api_name="decompress")

    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENT_GENERATIONS)
    # Gradio's queue looks for a job to start every millisecond and for progress to send every
    # 10, idle or busy: several percent of a core on a 2-core Space, and every look takes the
    # interpreter from a decoding thread. No public setting exists, so the private ones are set
    # where they exist (a Gradio without them polls as before). A job still starts far inside
    # the first-byte target, and the Compress tab's progress bar moves 20 times a second.
    queue = getattr(demo, "_queue", None)
    polls = {"sleep_when_free": QUEUE_POLL_S, "progress_update_sleep_when_free": QUEUE_PROGRESS_POLL_S}
    for setting, seconds in polls.items():
        if hasattr(queue, setting):
            setattr(queue, setting, seconds)
    # What a waiting visitor is told: the app's estimate of a generation (QueueEstimate), not
    # Gradio's mean, which runs short when visitors wait. Handed over at its first measurement
    # (Gradio says nothing until then), in the queue's private table where it exists.
    durations = getattr(queue, "process_time_per_fn", None)
    if isinstance(durations, dict):
        estimate.on_measured = functools.partial(durations.__setitem__, demo.fns[run_event["id"]], estimate)
    return demo


def load_default_model() -> DemoModel:
    """The shipped checkpoint, or what OMNIBYTE_MODEL / OMNIBYTE_PRESET name."""
    return DemoModel.load(os.environ.get("OMNIBYTE_MODEL") or None, os.environ.get("OMNIBYTE_PRESET") or None)


@functools.cache
def _default_demo() -> gr.Blocks:
    return build_demo(load_default_model())


def __getattr__(name: str):
    # `app.demo`, as Spaces and `gradio app.py` find it, is built (and the model loaded) on first
    # use, so importing app.py to call build_demo with another model loads nothing
    if name == "demo":
        return _default_demo()
    raise AttributeError(f"module 'app' has no attribute {name!r}")


def launch(demo: gr.Blocks | None = None, **overrides):
    """Serve the demo: uploads over the cap are refused by the server before they are read."""
    # show_error: a value Gradio itself cannot read (a seed of "abc") is reported, not hidden
    settings = dict(max_file_size=MAX_UPLOAD_BYTES, css=CSS, footer_links=["api", "gradio"], show_error=True)
    return (demo or _default_demo()).launch(**{**settings, **overrides})


if __name__ == "__main__":
    launch()
