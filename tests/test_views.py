"""The demo's views: live parts, segment cards, the byte map and the surprisal plot."""

import re
from pathlib import Path

import numpy as np

from omnibyte.codecs import to_native
from omnibyte.detector import ModalityDetector
from omnibyte.modality import Modality
from omnibyte.vocab import Boundary, ControlToken
from omnibyte.web.views import (
    StreamAnalysis,
    byte_map_html,
    hex_dump,
    live_view,
    live_view_html,
    segments_html,
    surprisal_svg,
    surprising_bytes,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def test_live_image_fills_rows_and_says_how_many_came_from_the_prompt():
    bmp = to_native((EXAMPLES / "red-circle.png").read_bytes()).data
    view = live_view(Modality.IMAGE, bmp[:54 + 20 * 96], prompt_bytes=54 + 16 * 96)
    assert view.kind == "image" and view.image.shape == (32, 32, 3)  # the page scales it up
    assert "20 of 32 rows" in view.caption and "16 from the prompt" in view.caption
    # rows not yet written (the top of the picture) are grey
    assert (view.image[:1] == 128).all()


def test_live_audio_is_int16_and_text_marks_the_prompt():
    wav = (EXAMPLES / "melody.wav").read_bytes()
    view = live_view(Modality.AUDIO, wav[:2044], prompt_bytes=1044)
    rate, samples = view.audio
    assert rate == 8000 and samples.dtype == np.int16 and len(samples) == 2000
    text = live_view(Modality.TEXT, b"prompt then more", prompt_bytes=6)
    assert text.text == [("prompt", "prompt"), (" then more", "generated")]
    raw = live_view(None, bytes(range(40)), prompt_bytes=20)
    assert [label for _, label in raw.text] == ["prompt", "prompt", "generated"]


def test_hex_dump_layout():
    assert hex_dump(b"AB\x00", start=16) == "00000010  41 42 00" + " " * 39 + "  AB."


def test_surprising_bytes_needs_both_the_floor_and_the_spread():
    surprisal = np.full(1000, 2.0)
    surprisal[500:540] = 12.0
    surprisal[10] = 9.0  # far above the baseline but under the 10-bit floor
    assert surprising_bytes(surprisal).tolist() == list(range(500, 540))
    assert surprising_bytes(np.zeros(0)).size == 0


def _analysis(data: bytes, prompt_bytes: int) -> StreamAnalysis:
    surprisal = np.full(len(data), 3.0)
    surprisal[-10:] = 14.0
    return StreamAnalysis(data, prompt_bytes, ModalityDetector().detect_bytes(data),
                          [Boundary(0, ControlToken.DOC_START)], [Boundary(len(data) - 5, ControlToken.DOC_END)],
                          surprisal, np.full(len(data), 4.0), surprising_bytes(surprisal),
                          [(len(data) - 10, len(data), 11.0)])


def test_every_segment_gets_a_card_rendered_as_what_it_is():
    data = (EXAMPLES / "mixed.bin").read_bytes()
    page = segments_html(_analysis(data, 100))
    assert [m for m in re.findall(r'data-modality="(\w+)"', page)] == ["text", "image", "audio"]
    assert 'src="data:image/png;base64,' in page and 'src="data:audio/wav;base64,' in page
    assert "a yellow triangle" in page
    assert "prompt to 100, generated after" in page and "bytes 39–3,165" in page


def test_byte_map_and_plot_show_boundaries_prompt_and_surprise():
    data = (EXAMPLES / "mixed.bin").read_bytes()
    analysis = _analysis(data, 100)
    page = byte_map_html(analysis)
    assert page.count('class="ob-bar-piece"') == 3 and 'class="ob-bar-model"' in page
    assert "Detector boundaries: 39, 3,165" in page and "DOC_END at 7,204" in page
    assert "Unusually surprising bytes: 10" in page and 'src="data:image/png;base64,' in page
    assert "Anomalous regions: 7,199–7,209 (+11.0 bits/byte)" in page
    svg = surprisal_svg(analysis)
    assert svg.count('class="ob-detector-boundary"') == 2 and svg.count('class="ob-model-boundary"') == 1
    assert svg.count("<circle") == 10 and "prompt: bytes 0–100" in svg
    assert svg.count('class="ob-anomaly"') == 1
    empty = StreamAnalysis(b"", 0, [], [], [], np.zeros(0), np.zeros(0), np.zeros(0, dtype=int))
    assert "No bytes" in surprisal_svg(empty) and "No bytes" in segments_html(empty)


def test_text_in_a_legacy_encoding_or_utf16_is_one_card_shown_as_its_words():
    russian = ("Файл не найден: проверьте путь и повторите попытку. Сохранить изменения перед выходом?\n"
               "Не удалось открыть соединение с сервером; повторите попытку позже.\n") * 8
    for data in (russian.encode("koi8-r"), b"\xff\xfe" + russian.encode("utf-16-le")):
        page = segments_html(_analysis(data, 0))
        assert re.findall(r'data-modality="(\w+)"', page) == ["text"]
        assert "Файл не найден" in page


def test_damaged_and_foreign_segments_still_render():
    noise = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    for data in (noise, (EXAMPLES / "red-circle.png").read_bytes(), (EXAMPLES / "moving-square.gif").read_bytes(),
                 b"BM" + noise):
        page = segments_html(_analysis(data, 0))
        assert 'class="ob-segment"' in page
    assert "<audio" in live_view_html(live_view(Modality.AUDIO, (EXAMPLES / "melody.wav").read_bytes()))
