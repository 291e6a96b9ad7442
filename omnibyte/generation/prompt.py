"""What a person asks the model to continue, as one prompt document.

A prompt is built from up to three things, in this order: typed text (a caption, or text to
continue), an upload, and the modality to ask for next. The upload is converted to its native
format (or, in raw mode, fed unchanged), and only its first `share` is kept as the prompt, cut
where the format allows: whole pixel rows of an image, whole frames of a video, whole samples of a
sound; text is continued from its end, so all of it is kept. The model then continues the last
part.

    >>> build_prompt(text="a red circle on a blue background", ask_for=Modality.IMAGE).tokens[:3]
    [256, 258, 97]

No torch here: the app checks and describes a prompt before any model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnibyte.codecs import BMP_BYTES, WAV_BYTES, Y4M_BYTES, to_native
from omnibyte.codecs.common import check_upload
from omnibyte.codecs.video import FRAME_MARKER, FRAME_SIZE, Y4M_HEADER
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.vocab import Boundary, document_tokens, split_control_tokens

__all__ = ["Prompt", "build_prompt", "cut_native", "NATIVE_SIZES", "MAX_PROMPT_TOKENS"]

# The size of one complete part in each native format: how many bytes a continuation needs to
# finish the part the prompt began. Text has no natural end.
NATIVE_SIZES = {Modality.IMAGE: BMP_BYTES, Modality.AUDIO: WAV_BYTES, Modality.VIDEO: Y4M_BYTES}

# A prompt longer than this keeps only its end: generation slides its window over anything
# longer than the model's context anyway, and a raw 50 MiB upload must not become 50 M Python ints.
MAX_PROMPT_TOKENS = 65_536

_BMP_HEADER_BYTES = 54
_BMP_ROW_BYTES = 32 * 3
_WAV_HEADER_BYTES = 44
_Y4M_FRAME_BYTES = len(FRAME_MARKER) + FRAME_SIZE * FRAME_SIZE


@dataclass(frozen=True)
class Prompt:
    """A prompt document and what the app shows about it."""

    tokens: list[int]  # DOC_START, modality tags and bytes
    modality: Modality | None  # the part the model continues; None for raw bytes
    part_bytes: bytes  # that part's bytes already in the prompt (a header and the first rows)
    notes: tuple[str, ...]  # one line each: what was converted, kept and cut

    @property
    def data(self) -> bytes:
        """The prompt's bytes, control tokens left out."""
        return split_control_tokens(self.tokens)[0]

    @property
    def boundaries(self) -> list[Boundary]:
        """Where the prompt's control tokens sit among its bytes."""
        return split_control_tokens(self.tokens)[1]

    @property
    def bytes_to_finish(self) -> int | None:
        """How many more bytes complete the part being continued (None: no natural end)."""
        size = NATIVE_SIZES.get(self.modality) if self.modality is not None else None
        return None if size is None else max(0, size - len(self.part_bytes))


def cut_native(modality: Modality | None, data: bytes, share: float) -> tuple[bytes, str]:
    """The first `share` (0-1) of native bytes, cut where the format allows, and a note saying what was kept."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise OmniByteError(f"the prompt share must be a number from 0 to 1, got {share!r}")
    if modality == Modality.IMAGE and len(data) == BMP_BYTES:
        rows = round(32 * share)
        # BMP stores the bottom row first, so the rows a prefix keeps are the bottom of the picture
        return (data[:_BMP_HEADER_BYTES + rows * _BMP_ROW_BYTES],
                f"prompt: the header and the first {rows} of 32 pixel rows in the file (BMP stores the bottom "
                f"row first, so the model paints the picture upwards)")
    if modality == Modality.AUDIO and len(data) == WAV_BYTES:
        samples = round((WAV_BYTES - _WAV_HEADER_BYTES) * share)
        return (data[:_WAV_HEADER_BYTES + samples],
                f"prompt: the header and the first {samples:,} samples ({samples / 8000:.2f} s) of the sound")
    if modality == Modality.VIDEO and len(data) == Y4M_BYTES:
        frames = round(8 * share)
        return (data[:len(Y4M_HEADER) + frames * _Y4M_FRAME_BYTES],
                f"prompt: the header and the first {frames} of 8 frames")
    if modality == Modality.TEXT:  # text is continued from its end, so all of it is the prompt
        return data, f"prompt: all {len(data):,} bytes of the text"
    keep = round(len(data) * share)
    return data[:keep], f"prompt: the first {keep:,} of {len(data):,} bytes"


def build_prompt(text: str = "", upload: bytes | None = None, filename: str | None = None, raw: bool = False,
                 share: float = 1.0, ask_for: Modality | None = None) -> Prompt:
    """One prompt document from typed text, an upload and the modality to ask for next.

    text: typed first, as a text part (a caption, or text to continue).
    upload: a file's bytes, converted to its native format unless `raw`; `share` of it is kept.
    ask_for: a modality tag at the end, asking the model to begin a part of that kind.
    Raises OmniByteError when there is nothing to continue or the upload cannot be converted.
    """
    if not isinstance(text, str):
        raise OmniByteError(f"the text must be a string, not {type(text).__name__}")
    if ask_for is not None:
        try:
            ask_for = Modality(ask_for)
        except ValueError:
            raise OmniByteError(f"cannot ask for {ask_for!r}: choose text, image, audio or video") from None
        if ask_for == Modality.BINARY:
            raise OmniByteError("cannot ask for binary: the model has no tag for it; "
                                "choose text, image, audio or video")
    parts: list[tuple[Modality | None, bytes]] = []
    notes: list[str] = []
    if text:
        parts.append((Modality.TEXT, text.encode("utf-8", errors="surrogatepass")))
    if upload is not None:
        name = f"upload {filename!r}" if filename else "upload"
        if raw:
            data = check_upload(upload, name)
            kept, note = cut_native(None, data, share)
            notes += [f"raw bytes: the {len(data):,}-byte file is fed unchanged, with no modality tag", note]
            parts.append((None, kept))
        else:
            native = to_native(upload, filename=filename)
            kept, note = cut_native(native.modality, native.data, share)
            notes += [f"converted to {native.modality.value}: {len(native.data):,} native bytes", *native.notes, note]
            parts.append((native.modality, kept))
    if ask_for is not None:
        parts.append((ask_for, b""))
    # only the prompt's end is kept, so a part longer than that is cut before it becomes tokens
    for i, (modality, data) in enumerate(parts):
        if len(data) > MAX_PROMPT_TOKENS:
            parts[i] = (modality, data[-MAX_PROMPT_TOKENS:])
    if not parts:
        raise OmniByteError("nothing to continue: upload a file, type some text, or choose what to start")
    tokens = document_tokens(parts)
    if len(tokens) > MAX_PROMPT_TOKENS:
        notes.append(f"the prompt is {len(tokens):,} tokens; only its last {MAX_PROMPT_TOKENS:,} are kept")
        tokens = tokens[-MAX_PROMPT_TOKENS:]
    modality, part = parts[-1]
    return Prompt(tokens, modality, part[-MAX_PROMPT_TOKENS:], tuple(notes))
