import math

import numpy as np
import torch

from omnibyte.tools.score import score_bytes
from omnibyte.vocab import ControlToken


def test_surprisal_is_the_negative_log2_probability_of_each_byte(model):
    data = b"hello bytes"
    scores = score_bytes(model, data)
    with torch.no_grad():
        idx = torch.tensor([[ControlToken.DOC_START] + list(data)])
        probs = torch.softmax(model(idx[:, :-1]), dim=-1)[0]
    expected = [-math.log2(probs[i, b]) for i, b in enumerate(data)]
    np.testing.assert_allclose(scores.surprisal_bits, expected, rtol=1e-4)
    assert scores.bits_per_byte == np.mean(scores.surprisal_bits)


def test_untrained_models_are_near_eight_bits_per_byte(model):
    bpb = score_bytes(model, bytes(range(256))).bits_per_byte
    assert 7.5 < bpb < 8.5


def test_entropy_is_bounded_by_the_vocabulary(model):
    scores = score_bytes(model, b"abc" * 10)
    assert np.all(scores.entropy_bits >= 0) and np.all(scores.entropy_bits <= math.log2(model.config.vocab_size) + 1e-6)


def test_files_longer_than_the_context_are_scored_in_independent_windows(model):
    window = model.config.max_seq_len - 1
    data = bytes(np.random.default_rng(0).integers(0, 256, 3 * window + 10, dtype=np.uint8))
    whole = score_bytes(model, data, batch_size=2)
    for start in range(0, len(data), window):
        part = score_bytes(model, data[start:start + window])
        np.testing.assert_allclose(whole.surprisal_bits[start:start + window], part.surprisal_bits, rtol=1e-5)


def test_an_empty_file_has_no_bits_per_byte(model):
    assert score_bytes(model, b"").bits_per_byte is None
