"""The model side of the web demo: live updates, the part being written, and the analysis."""

import time

import numpy as np
import pytest
import torch

from omnibyte.codecs import BMP_BYTES
from omnibyte.errors import OmniByteError
from omnibyte.generation.generate import SamplingParams
from omnibyte.generation.prompt import build_prompt
from omnibyte.modality import Modality
from omnibyte.tools.score import score_tokens
from omnibyte.vocab import Boundary, ControlToken
from omnibyte.web.service import DemoModel, QueueEstimate, analyse_stream, current_part, stream_continuation
from tests.conftest import tiny_model


@pytest.fixture
def demo_model():
    return DemoModel(tiny_model(), "tiny test model", trained=False)


def test_worker_shares_weights_but_not_the_kv_cache(demo_model):
    worker = demo_model.worker()
    assert worker.tok_embeddings.weight is demo_model.model.tok_embeddings.weight
    worker.setup_kv_cache()
    assert demo_model.model.blocks[0].attn.kv_cache is None


def test_stream_ends_with_one_done_update_holding_everything(demo_model):
    # each step at least 2 ms (a hook, which also keeps it in PyTorch): the model decodes on its
    # own thread, and updates are snapshots of what it has written when the reader looks
    demo_model.model.register_forward_hook(lambda *_: time.sleep(0.002))
    prompt = build_prompt(text="hello")
    params = SamplingParams(max_new_bytes=40, seed=1, chunk_size=4, stop_at_doc_end=False)
    updates = list(stream_continuation(demo_model, prompt, params, min_interval_s=0))
    assert len(updates) > 3 and all(not u.done for u in updates[:-1]) and updates[-1].done
    assert updates[-1].stop_reason == "max_new_bytes" and len(updates[-1].generated) == 40
    # every update extends the one before it
    for before, after in zip(updates, updates[1:]):
        assert after.generated.startswith(before.generated)


def test_stream_stops_at_the_time_limit(demo_model):
    params = SamplingParams(max_new_bytes=5000, seed=0, chunk_size=1, stop_at_doc_end=False)
    updates = list(stream_continuation(demo_model, build_prompt(text="x"), params, time_limit_s=0.05))
    assert updates[-1].done and updates[-1].stop_reason == "time_limit"
    assert len(updates[-1].generated) < 5000


def test_closing_the_stream_frees_the_worker(demo_model):
    stream = stream_continuation(demo_model, build_prompt(text="x"),
                                 SamplingParams(max_new_bytes=1000, chunk_size=1, stop_at_doc_end=False),
                                 min_interval_s=0)
    next(stream)
    stream.close()  # GeneratorExit reaches stream_generate: no exception, nothing left running
    with pytest.raises(StopIteration):
        next(stream)


def test_bad_stream_arguments_are_refused(demo_model):
    with pytest.raises(OmniByteError, match="one sample"):
        next(stream_continuation(demo_model, build_prompt(text="x"), SamplingParams(num_samples=2)))
    with pytest.raises(OmniByteError, match="time limit"):
        next(stream_continuation(demo_model, build_prompt(text="x"), SamplingParams(), time_limit_s=0))


def test_current_part_follows_the_last_tag():
    prompt = build_prompt(text="caption", ask_for=Modality.IMAGE)
    from omnibyte.web.service import StreamUpdate
    update = StreamUpdate(b"BMxyz", (), 1.0, False)
    assert current_part(prompt, update) == (Modality.IMAGE, b"BMxyz")
    switched = StreamUpdate(b"BMxyzRIFF", (Boundary(5, ControlToken.AUDIO),), 1.0, False)
    assert current_part(prompt, switched) == (Modality.AUDIO, b"RIFF")
    ended = StreamUpdate(b"BMxyzabc", (Boundary(5, ControlToken.DOC_END),), 1.0, False)
    assert current_part(prompt, ended) == (None, b"abc")


def test_score_tokens_matches_a_direct_forward_pass_and_handles_windows():
    model = tiny_model()  # context 64
    tokens = [int(ControlToken.DOC_START)] + list(np.random.default_rng(0).integers(0, 256, 150))
    surprisal, entropy = score_tokens(model, tokens)
    assert surprisal.shape == (151,) and surprisal[0] == 0 and (surprisal[1:] > 0).all()
    assert (entropy[1:] > 0).all() and (entropy <= np.log2(262) + 1e-6).all()
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(torch.tensor([tokens[:64]])), dim=-1)[0]
    direct = -logprobs[:-1].gather(-1, torch.tensor(tokens[1:64])[:, None])[:, 0] / np.log(2)
    np.testing.assert_allclose(surprisal[1:64], direct.numpy(), rtol=1e-5, atol=1e-5)


def test_analysis_covers_prompt_and_generated_bytes(demo_model):
    prompt = build_prompt(text="a caption", ask_for=Modality.IMAGE)
    from omnibyte.codecs.image import BMP_HEADER
    generated = BMP_HEADER + bytes(range(256)) * 4
    analysis = analyse_stream(demo_model, prompt, generated, [Boundary(len(generated), ControlToken.DOC_END)])
    assert analysis.data == b"a caption" + generated and analysis.prompt_bytes == 9
    assert analysis.surprisal_bits.shape == (len(analysis.data),)
    assert analysis.segments[0].start == 0 and analysis.segments[-1].end == len(analysis.data)
    assert [b.offset for b in analysis.model_boundaries] == [len(analysis.data)]
    assert [b.token for b in analysis.prompt_tags][-1] == ControlToken.IMAGE
    assert BMP_BYTES > len(generated)


def test_prompt_and_continuation_are_each_judged_against_their_own_baseline(demo_model, monkeypatch):
    # a detailed picture (about 5 bits a byte) continued by flat colour (about half a bit): judged
    # apart, a damaged run in the continuation is found and scored against the continuation's own
    # baseline (against one baseline for both it scored 7.1 bits, not 11.5)
    import omnibyte.web.service as demo

    prompt = build_prompt(text="x" * 1500)
    generated = b"y" * 1500
    rng = np.random.default_rng(0)
    per_byte = np.concatenate([rng.normal(5.0, 0.5, 1500), rng.normal(0.5, 0.1, 1500)])
    per_byte[2000:2040] = 12.0  # a damaged run inside the continuation

    def fake_scores(model, tokens):
        scores = np.zeros(len(tokens))
        scores[np.asarray(tokens) < 256] = per_byte
        return scores, scores

    monkeypatch.setattr(demo, "score_tokens", fake_scores)
    analysis = analyse_stream(demo_model, prompt, generated, [])
    [(start, end, score)] = analysis.anomalies
    assert abs(start - 2000) <= 4 and abs(end - 2040) <= 4 and score > 10


def test_a_slow_reader_never_slows_the_model(demo_model):
    # the reader takes 0.1 s per update (a big picture to encode, a slow connection); the model,
    # on its own thread, writes on regardless: all 60 bytes in the time of about one update
    demo_model.model.register_forward_hook(lambda *_: time.sleep(0.001))
    params = SamplingParams(max_new_bytes=60, seed=1, chunk_size=4, stop_at_doc_end=False)
    started = time.perf_counter()
    updates = []
    for update in stream_continuation(demo_model, build_prompt(text="hello"), params, min_interval_s=0):
        updates.append(update)
        time.sleep(0.1)
    update = updates[-1]
    assert update.done and len(update.generated) == 60
    assert update.elapsed_s < 0.1 + 60 * 0.01 and time.perf_counter() - started < 0.5


def test_generations_share_the_cores_out(demo_model):
    before = torch.get_num_threads()
    model = DemoModel(tiny_model(), "tiny", trained=False, cores=4)
    try:
        with model.generation():
            assert torch.get_num_threads() == 4  # one visitor: every core
            with model.generation():
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_the_queue_estimate_is_the_longest_recent_request_as_if_sharing():
    measured = []
    estimate = QueueEstimate(sharing=2, recent=2, on_measured=lambda: measured.append(estimate.avg_time))
    with estimate.timing():  # alone: given half the machine it would take up to twice as long
        time.sleep(0.05)
    assert 0.1 <= estimate.avg_time < 0.1 + 0.1
    with estimate.timing():  # two at once: each as measured
        with pytest.raises(RuntimeError), estimate.timing():
            time.sleep(0.02)
            raise RuntimeError("a request that fails (or is cancelled) is timed too")
    # the two shared ones are the recent two: the longest of them, unscaled
    assert 0.02 <= estimate.avg_time < 0.02 + 0.05
    assert len(measured) == 3 and measured[0] >= 0.1
    estimate.add(100.0)  # Gradio's own measurement changes nothing
    assert estimate.avg_time < 1
    with pytest.raises(ValueError, match="sharing"):
        QueueEstimate(sharing=0)


def test_a_prompt_read_ahead_is_not_read_again(demo_model):
    prompt = build_prompt(text="a prompt read while its visitor looks at it")
    reads = []
    demo_model.model.register_forward_pre_hook(lambda _, args: reads.append(args[0].shape[1]))
    demo_model.prefill_ahead(prompt.tokens).join()
    assert demo_model.prefill_ahead(prompt.tokens) is None  # once per prompt
    params = SamplingParams(max_new_bytes=20, seed=1, stop_at_doc_end=False)
    updates = list(stream_continuation(demo_model, prompt, params))
    assert updates[-1].done and len(updates[-1].generated) == 20
    assert reads.count(len(prompt.tokens)) == 1  # the read ahead; generation started from its cache


def test_one_prompt_is_read_ahead_at_a_time(demo_model):
    import threading

    reading = threading.Event()
    demo_model.model.register_forward_pre_hook(lambda *_: reading.wait(5) and None)  # the first read takes its time
    first = demo_model.prefill_ahead(build_prompt(text="one upload").tokens)
    assert demo_model.prefill_ahead(build_prompt(text="and another at once").tokens) is None  # busy: skipped
    reading.set()
    first.join()
    later = demo_model.prefill_ahead(build_prompt(text="and another later").tokens)
    later.join()
    assert demo_model.prefilled(build_prompt(text="and another later").tokens) is not None
