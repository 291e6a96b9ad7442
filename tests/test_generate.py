import numpy as np
import pytest
import torch
import torch.nn as nn

from omnibyte.errors import OmniByteError
from omnibyte.generation.generate import SamplingParams, generate, logits_to_probs, sample_next, stream_generate
from omnibyte.modality import Modality
from omnibyte.vocab import VOCAB_SIZE, ControlToken, document_tokens

PROMPT = [256, 258] + list(b"Once upon a time")


class FixedHead(nn.Module):
    """An output head that always prefers one token, to steer generation in tests."""

    def __init__(self, token: int) -> None:
        super().__init__()
        self.token = token
        self.weight = nn.Parameter(torch.zeros(VOCAB_SIZE, 1))

    def forward(self, x):
        logits = torch.zeros(*x.shape[:-1], VOCAB_SIZE)
        logits[..., self.token] = 50.0
        return logits


def test_the_same_seed_gives_the_same_output(model):
    params = SamplingParams(max_new_bytes=100, seed=7, stop_at_doc_end=False)
    assert generate(model, PROMPT, params)[0].data == generate(model, PROMPT, params)[0].data


def test_different_seeds_give_different_output(model):
    a = generate(model, PROMPT, SamplingParams(max_new_bytes=100, seed=1, stop_at_doc_end=False))[0]
    b = generate(model, PROMPT, SamplingParams(max_new_bytes=100, seed=2, stop_at_doc_end=False))[0]
    assert a.data != b.data


def test_greedy_decoding_with_the_cache_follows_the_uncached_argmax(model):
    out = generate(model, PROMPT, SamplingParams(max_new_bytes=20, temperature=0, stop_at_doc_end=False))[0]
    tokens = list(PROMPT)
    with torch.no_grad():
        while sum(t < 256 for t in tokens[len(PROMPT):]) < 20:
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    assert out.data == bytes(t for t in tokens[len(PROMPT):] if t < 256)


def test_output_streams_in_chunks_with_contiguous_offsets(model):
    chunks = list(stream_generate(model, PROMPT, SamplingParams(max_new_bytes=100, seed=0, chunk_size=8,
                                                                stop_at_doc_end=False)))
    assert len(chunks) >= 10
    assert all(not c.finished for c in chunks[:-1]) and chunks[-1].finished
    assert chunks[-1].stop_reason == "max_new_bytes"
    offset = 0
    for chunk in chunks:
        assert chunk.offset == offset
        offset += len(chunk.data)
    assert offset == 100


def test_closing_the_generator_stops_the_work(model):
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    stream = stream_generate(model, PROMPT, SamplingParams(max_new_bytes=10_000, seed=0, chunk_size=4,
                                                           stop_at_doc_end=False))
    next(stream)
    next(stream)
    stream.close()
    done = len(calls)
    assert done < 20
    assert model.blocks[0].attn.kv_cache is None  # the cache is released
    with pytest.raises(StopIteration):
        next(stream)
    assert len(calls) == done


def test_generation_stops_at_document_end(model):
    model.lm_head = FixedHead(ControlToken.DOC_END)
    result = generate(model, PROMPT, SamplingParams(max_new_bytes=100, seed=0))[0]
    assert result.stop_reason == "doc_end" and result.data == b""
    assert [b.token for b in result.boundaries] == [ControlToken.DOC_END]


def test_document_end_can_be_ignored(model):
    model.lm_head = FixedHead(ControlToken.DOC_END)
    result = generate(model, PROMPT, SamplingParams(max_new_bytes=5, seed=0, stop_at_doc_end=False))[0]
    assert result.stop_reason == "max_tokens" and result.data == b""


def test_a_model_that_emits_only_control_tokens_still_stops(model):
    model.lm_head = FixedHead(ControlToken.IMAGE)
    result = generate(model, PROMPT, SamplingParams(max_new_bytes=10, seed=0))[0]
    assert result.stop_reason == "max_tokens"
    assert len(result.boundaries) == 2 * 10 + 64


def test_model_declared_boundaries_are_reported_at_byte_offsets(model):
    model.lm_head = FixedHead(65)
    chunks = list(stream_generate(model, PROMPT, SamplingParams(max_new_bytes=12, temperature=0, chunk_size=5)))
    assert b"".join(c.data for c in chunks) == b"A" * 12


def test_generation_slides_past_the_end_of_the_context(model):
    context = model.config.max_seq_len
    result = generate(model, PROMPT, SamplingParams(max_new_bytes=5 * context, seed=0, stop_at_doc_end=False))[0]
    assert len(result.data) == 5 * context


def test_a_prompt_longer_than_the_context_keeps_its_end(model):
    prompt = [256] + [7] * (3 * model.config.max_seq_len)
    result = generate(model, prompt, SamplingParams(max_new_bytes=10, seed=0, stop_at_doc_end=False))[0]
    assert len(result.data) == 10


def test_several_samples_run_as_one_batch_and_differ(model):
    results = generate(model, PROMPT, SamplingParams(max_new_bytes=50, seed=3, num_samples=3, stop_at_doc_end=False))
    assert [len(r.data) for r in results] == [50, 50, 50]
    assert len({r.data for r in results}) == 3


def test_greedy_samples_in_a_batch_are_identical(model):
    results = generate(model, PROMPT, SamplingParams(max_new_bytes=30, temperature=0, num_samples=2,
                                                     stop_at_doc_end=False))
    assert results[0].data == results[1].data


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_bytes=0), "max new bytes"),
    (dict(max_new_bytes=10**9), "max new bytes"),
    (dict(temperature=-1), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top-k"),
    (dict(top_p=0), "top-p"),
    (dict(top_p=1.5), "top-p"),
    (dict(seed=-1), "seed"),
    (dict(num_samples=0), "samples"),
    (dict(max_new_bytes="10"), "max new bytes"),
])
def test_invalid_sampling_parameters_are_refused(kwargs, message):
    with pytest.raises(OmniByteError, match=message):
        SamplingParams(**kwargs)


def test_empty_or_out_of_range_prompts_are_refused(model):
    with pytest.raises(OmniByteError, match="empty"):
        next(stream_generate(model, [], SamplingParams()))
    with pytest.raises(OmniByteError, match="token ids"):
        next(stream_generate(model, [VOCAB_SIZE], SamplingParams()))


def test_top_k_keeps_only_the_k_most_likely_tokens():
    logits = np.array([[1.0, 4.0, 3.0, 2.0], [9.0, 1.0, 2.0, 3.0]])
    probs = logits_to_probs(logits, top_k=2)
    assert (probs > 0).tolist() == [[False, True, True, False], [True, False, False, True]]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    assert (logits_to_probs(logits, top_p=0.7) > 0).tolist() == [[True, True, False, False], [False, False, True, True]]
    assert (logits_to_probs(logits, top_p=0.5)[0] > 0).tolist() == [True, False, False, False]
    np.testing.assert_allclose(logits_to_probs(logits, top_p=0.7).sum(axis=-1), 1.0)


def test_sampling_follows_the_probabilities_and_never_draws_a_filtered_token():
    logits = np.log(np.array([[0.6, 0.3, 0.1, 1e-9]] * 4000))
    rng = np.random.default_rng(0)
    drawn = sample_next(logits, SamplingParams(top_k=3), rng)
    counts = np.bincount(drawn, minlength=4) / len(drawn)
    assert counts[3] == 0
    np.testing.assert_allclose(counts[:3], [0.6, 0.3, 0.1], atol=0.03)
    assert (sample_next(logits[:2], SamplingParams(temperature=0), rng) == 0).all()


def test_resuming_from_other_threads_works_and_leaks_no_inference_mode(model):
    # a web server resumes a streaming generator from whichever worker thread is free; grad and
    # inference modes are per thread, so no step may rely on a mode set before a yield
    from concurrent.futures import ThreadPoolExecutor

    reference = generate(model, [ControlToken.DOC_START], SamplingParams(max_new_bytes=40, seed=3, chunk_size=4))
    stream = stream_generate(model, [ControlToken.DOC_START], SamplingParams(max_new_bytes=40, seed=3, chunk_size=4))
    chunks = []
    with ThreadPoolExecutor(4) as pool:
        while True:
            # each step in a fresh thread, which then says whether it was left in inference mode
            step = pool.submit(lambda: (next(stream, None), torch.is_inference_mode_enabled())).result()
            assert not step[1], "a yield left the thread that resumed the generator in inference mode"
            if step[0] is None:
                break
            chunks.append(step[0])
    assert not torch.is_inference_mode_enabled()
    assert b"".join(c.data for c in chunks) == reference[0].data


def _text_parts(result, in_text=True):
    """The bytes of each text part of a result: an untrained model also emits other parts' tags."""
    parts, start = [], 0
    for boundary in result.boundaries + [None]:
        end = len(result.data) if boundary is None else boundary.offset
        if in_text:
            parts.append((result.data[start:end], boundary is None))
        if boundary is not None:
            in_text = boundary.token == ControlToken.TEXT if boundary.token != ControlToken.DOC_START else False
            start = end
    return parts


def test_valid_utf8_keeps_sampled_text_decodable(model):
    from omnibyte.training.evaluate import text_is_valid

    # an untrained model samples high bytes freely: without the guard its text breaks
    params = dict(max_new_bytes=300, seed=3, stop_at_doc_end=False, temperature=1.5, num_samples=4)
    raw = generate(model, PROMPT, SamplingParams(**params))
    guarded = generate(model, PROMPT, SamplingParams(**params, valid_utf8=True))
    assert not all(text_is_valid(data, cut_short=last) for r in raw for data, last in _text_parts(r))
    # a part that ends the sample may stop inside its last character: that is the byte limit's cut
    assert all(text_is_valid(data, cut_short=last) for r in guarded for data, last in _text_parts(r))
    assert sum(len(data) for r in guarded for data, _ in _text_parts(r)) > 100


def test_valid_media_makes_an_untrained_models_pictures_and_videos_decode(model):
    from omnibyte.modality import Modality
    from omnibyte.training.evaluate import bmp_is_valid, y4m_is_valid
    from omnibyte.vocab import document_tokens

    for modality, check, size in ((Modality.IMAGE, bmp_is_valid, 3126), (Modality.VIDEO, y4m_is_valid, 2133)):
        params = dict(max_new_bytes=size + 20, seed=1, stop_at_doc_end=False, num_samples=2)
        prompt = document_tokens([(modality, b"")])
        raw = generate(model, prompt, SamplingParams(**params))
        guarded = generate(model, prompt, SamplingParams(**params, valid_media=True))
        assert not any(check(r.data) for r in raw)
        # complete at exactly its length, then a control token (a new part, or the document's end)
        for r in guarded:
            assert check(r.data[:size]) and r.boundaries and r.boundaries[0].offset == size


def test_guidance_prompt_is_the_last_part_alone():
    from omnibyte.generation.generate import guidance_prompt

    start, text, image = int(ControlToken.DOC_START), int(ControlToken.TEXT), int(ControlToken.IMAGE)
    assert guidance_prompt([start, text, 65, 66, image]) == [start, image]
    assert guidance_prompt([start, text, 65, image, 1, 2]) == [start, image, 1, 2]
    assert guidance_prompt([start, image, 1, 2]) is None  # nothing before the last part
    assert guidance_prompt([65, 66]) is None


def test_guided_logits_push_away_from_the_unconditional():
    from omnibyte.generation.generate import guided_logits

    cond = np.log(np.array([[0.5, 0.3, 0.2]]))
    uncond = np.log(np.array([[0.6, 0.2, 0.2]]))
    assert np.allclose(guided_logits(cond, uncond, 1.0), cond)
    guided = guided_logits(cond, uncond, 3.0)
    probs = np.exp(guided - guided.max())
    probs /= probs.sum()
    assert probs[0, 1] > 0.3 and probs[0, 0] < 0.5  # the token the caption favours gains


def test_guidance_runs_a_second_cache_and_changes_the_samples(model):
    prompt = [256, 258] + list(b"a red circle") + [int(ControlToken.IMAGE)]
    plain = generate(model, prompt, SamplingParams(max_new_bytes=64, seed=5, stop_at_doc_end=False))[0].data
    guided = generate(model, prompt, SamplingParams(max_new_bytes=64, seed=5, stop_at_doc_end=False,
                                                    guidance_scale=4.0))[0].data
    assert len(guided) == 64 and guided != plain
    # the caller's model keeps no cache afterwards
    assert all(block.attn.kv_cache is None for block in model.blocks)


@pytest.mark.parametrize("bad", [-1, 21, float("nan"), "2", True])
def test_invalid_guidance_scale_is_refused(bad):
    with pytest.raises(OmniByteError, match="guidance scale"):
        SamplingParams(guidance_scale=bad)


def test_guidance_as_one_batch_samples_what_two_separate_runs_sample():
    # the compiled path runs both contexts in one batch, each stream at its own position; PyTorch
    # runs two models. Same logits to float rounding, so greedy decoding picks the same bytes,
    # also across a slide of the context (tiny: 64 tokens) in each context at its own time
    from tests.conftest import tiny_model

    model = tiny_model()
    prompt = document_tokens([(Modality.TEXT, b"a red circle"), (Modality.IMAGE, b"BM")])
    for samples, temperature in ((1, 0), (2, 0), (2, 1.0)):  # sampled streams differ: each slides its own past
        params = SamplingParams(max_new_bytes=120, temperature=temperature, guidance_scale=3.0, seed=4,
                                stop_at_doc_end=False, num_samples=samples)
        batched = generate(model, prompt, params, compiled_step=True)
        separate = generate(model, prompt, params, compiled_step=False)
        assert [r.data for r in batched] == [r.data for r in separate]
        assert len(batched[0].data) == 120


def test_the_first_token_streams_out_on_its_own(model):
    chunks = list(stream_generate(model, PROMPT, SamplingParams(max_new_bytes=40, seed=0, chunk_size=8,
                                                                stop_at_doc_end=False)))
    assert chunks[0].tokens_done == 1 and len(chunks[0].data) <= 1
    assert [c.tokens_done for c in chunks[1:3]] == [9, 17]


def test_a_prefilled_prompt_generates_what_reading_it_again_generates():
    from omnibyte.generation.generate import prefill_prompt
    from tests.conftest import tiny_model

    model = tiny_model()
    prompt = document_tokens([(Modality.TEXT, b"a red circle"), (Modality.IMAGE, b"BM6")])
    prefilled = prefill_prompt(model, prompt)
    assert prefilled.tokens == tuple(prompt) and prefilled.keys[0].shape[1] == len(prompt)
    for guidance, samples, compiled in ((1.0, 2, True), (3.0, 1, True), (3.0, 1, False)):
        params = SamplingParams(max_new_bytes=80, seed=5, guidance_scale=guidance, num_samples=samples,
                                stop_at_doc_end=False)
        fresh = generate(model, prompt, params, compiled_step=compiled)
        ahead = [b"".join(c.data for c in stream_generate(model, prompt, params, compiled, prefilled=prefilled)
                          if c.sample == i) for i in range(samples)]
        assert ahead == [r.data for r in fresh]
    # a prefill of other tokens is not used: the output is that of the prompt given
    other = prefill_prompt(model, prompt[:-1])
    params = SamplingParams(max_new_bytes=30, seed=5, stop_at_doc_end=False)
    assert b"".join(c.data for c in stream_generate(model, prompt, params, prefilled=other)) == \
        generate(model, prompt, params)[0].data
