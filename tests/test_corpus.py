import json

import numpy as np
import pytest

from omnibyte.codecs import decode_audio, decode_image, decode_video
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.training.corpus import COLOURS, Document, build_corpus, draw_shape, moving_shape, tone
from omnibyte.training.evaluate import dominant_hz, nearest_colour_share
from omnibyte.training.train import load_tokens
from omnibyte.vocab import ControlToken

PROCEDURAL = {"shapes", "tones", "moving-shapes", "mixed"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    manifest = build_corpus(out, seed=3, scale=0.02, sources=PROCEDURAL)
    return out, manifest


def test_the_corpus_is_packed_documents_of_the_native_formats(corpus):
    out, manifest = corpus
    tokens = np.asarray(load_tokens(out / "train.tokens"))
    assert tokens[0] == ControlToken.DOC_START and tokens[-1] == ControlToken.DOC_END
    assert (tokens == ControlToken.DOC_START).sum() == (tokens == ControlToken.DOC_END).sum()
    assert manifest["counts"]["train/total_tokens"] == len(tokens)


def test_the_same_seed_builds_the_same_corpus(corpus, tmp_path):
    out, _ = corpus
    build_corpus(tmp_path, seed=3, scale=0.02, sources=PROCEDURAL)
    assert (tmp_path / "train.tokens").read_bytes() == (out / "train.tokens").read_bytes()


def test_every_modality_also_starts_right_after_doc_start(corpus):
    # unconditional samples begin DOC_START, tag: the corpus must hold that context for each
    tokens = np.asarray(load_tokens(corpus[0] / "train.tokens"))
    after_start = set(tokens[1:][tokens[:-1] == ControlToken.DOC_START].tolist())
    for tag in (ControlToken.IMAGE, ControlToken.AUDIO, ControlToken.VIDEO):
        assert int(tag) in after_start
    assert corpus[1]["counts"]["bare/tones/documents"] > 0


def test_held_out_items_are_written_as_native_files_with_their_captions(corpus):
    out, _ = corpus
    rows = [json.loads(line) for line in (out / "val" / "captions.jsonl").read_text().splitlines()]
    assert rows, "a 5% split of a few hundred documents holds some captioned items"
    for row in rows:
        data = (out / row["file"]).read_bytes()
        decoded = {"image": decode_image, "audio": decode_audio, "video": decode_video}[row["modality"]](data)
        assert decoded.repairs == ()


def test_the_split_is_decided_by_source_item_not_by_chance():
    a = Document("shapes", "17", [])
    assert a.held_out == Document("shapes", "17", [(Modality.TEXT, b"other")]).held_out
    held = sum(Document("x", str(i), []).held_out for i in range(4000))
    assert 120 < held < 280  # about one in twenty


def test_a_drawn_shape_shows_its_colour_on_its_background():
    pixels = draw_shape("circle", "red", "blue", np.random.default_rng(0))
    assert nearest_colour_share(pixels, "red") > 0.1 and nearest_colour_share(pixels, "blue") > 0.4


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "stripes"])
def test_a_drawn_shape_has_no_blended_edge(shape):
    # the caption's colour is learned from the first shape pixel, so it must be exactly that colour
    pixels = draw_shape(shape, "green", "purple", np.random.default_rng(3)).reshape(-1, 3)
    is_shape = (pixels == COLOURS["green"]).all(1)
    assert is_shape.any() and (is_shape | (pixels == COLOURS["purple"]).all(1)).all()


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_a_shape_on_the_bottom_edge_starts_in_the_first_stored_row(shape):
    # BMP rows are stored bottom first: the colour comes right after the header
    for seed in range(5):
        pixels = draw_shape(shape, "green", "purple", np.random.default_rng(seed), on_bottom_edge=True)
        assert (pixels[-1] == COLOURS["green"]).all(1).any()


def test_the_bottom_edge_shapes_are_built_only_when_asked_for():
    from omnibyte.training.corpus import SOURCES, all_documents, selected_sources
    assert selected_sources(None) == list(SOURCES) and "shapes-low" not in SOURCES
    assert selected_sources({"shapes", "shapes-low"}) == ["shapes", "shapes-low"]
    low = list(all_documents(0, scale=0.002, sources={"shapes-low"}))
    assert low and {doc.source for doc in low} == {"shapes-low"}


def test_a_tone_has_the_pitch_it_is_named_after():
    samples = np.clip(np.round(tone([440]) * 127 + 128), 0, 255).astype(np.uint8)
    assert abs(dominant_hz(samples) - 440) < 10


def test_a_moving_shape_moves():
    frames = moving_shape("square", "right", 250, np.random.default_rng(1))
    assert frames.shape == (8, 16, 16) and not np.array_equal(frames[0], frames[1])


def test_unknown_sources_are_refused(tmp_path):
    with pytest.raises(OmniByteError, match="unknown corpus source"):
        build_corpus(tmp_path, sources={"nonsense"})


def test_every_caption_colour_is_in_the_palette():
    assert {"red", "blue", "green"} <= set(COLOURS)
