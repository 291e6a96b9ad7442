import numpy as np
import pytest
import torch
from conftest import tiny_model

from omnibyte.errors import OmniByteError
from omnibyte.generation.generate import SamplingParams, decode_one, generate, prefill
from omnibyte.model.compiled_decode import CompiledDecodeStep, compiled_decode_supported, warm_up

TOKENS = torch.tensor([[256, 258] + list(b"compiled and torch agree, byte by byte")])


def model_with_every_weight_set(n_kv_heads: int, attention_window: int | None = None):
    """A tiny model whose norm gains are not all ones, so folding them into matrices is tested."""
    model = tiny_model(n_kv_heads=n_kv_heads, attention_window=attention_window)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("n_kv_heads, window", [(1, None), (2, None), (4, None), (2, 8)])
def test_compiled_step_gives_the_logits_of_torch_decoding(n_kv_heads, window):
    # window 8: most of the 40 positions see only the 8 most recent, as the model trained
    model = model_with_every_weight_set(n_kv_heads, window)
    with torch.inference_mode():
        full = model(TOKENS)[0]  # (T, vocab)
        model.setup_kv_cache(batch_size=1)
        prefill(model, TOKENS[:, :5])
        step = CompiledDecodeStep(model)
        ours = [step([int(TOKENS[0, pos])], pos)[0] for pos in range(5, TOKENS.size(1))]
    np.testing.assert_allclose(np.stack(ours), full[5:].numpy(), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("window", [None, 8])
def test_a_batch_of_streams_each_gets_its_own_logits(window):
    model = model_with_every_weight_set(2, window)
    rows = torch.stack([TOKENS[0], TOKENS[0].flip(0), torch.arange(TOKENS.size(1)) % 256])  # (3, T)
    with torch.inference_mode():
        full = model(rows)  # (3, T, vocab)
        model.setup_kv_cache(batch_size=3)
        prefill(model, rows[:, :6])
        step = CompiledDecodeStep(model)
        ours = np.stack([step(rows[:, pos].numpy(), pos) for pos in range(6, rows.size(1))], axis=1)
        # streams at positions of their own (guidance's two contexts): each sees its own window
        # (the second writes position 19 again, with the token it holds)
        model.setup_kv_cache(batch_size=2)
        prefill(model, rows[:2, :20])
        apart = CompiledDecodeStep(model)([int(rows[0, 20]), int(rows[1, 19])], [20, 19])
    np.testing.assert_allclose(ours, full[:, 6:].numpy(), atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(apart, torch.stack([full[0, 20], full[1, 19]]).numpy(), atol=2e-4, rtol=1e-4)


def test_compiled_and_torch_steps_share_one_cache():
    # torch decodes some positions, the compiled step the next, torch again: one and the same cache
    model = model_with_every_weight_set(2)
    with torch.inference_mode():
        full = model(TOKENS)[0]
        model.setup_kv_cache(batch_size=1)
        prefill(model, TOKENS[:, :4])
        step = CompiledDecodeStep(model)
        for pos in range(4, 10):
            step([int(TOKENS[0, pos])], pos)
        torch_logits = decode_one(model, TOKENS[:, 10:11], 10)[0]
        compiled_logits = step([int(TOKENS[0, 11])], 11)[0]
    torch.testing.assert_close(torch_logits, full[10], atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(compiled_logits, full[11].numpy(), atol=2e-4, rtol=1e-4)


def test_greedy_generation_is_the_same_on_either_path():
    model = model_with_every_weight_set(2)
    params = SamplingParams(max_new_bytes=40, temperature=0, stop_at_doc_end=False, num_samples=2)
    prompt = TOKENS[0, :8].tolist()
    compiled = generate(model, prompt, params, compiled_step=True)
    eager = generate(model, prompt, params, compiled_step=False)
    assert [r.data for r in compiled] == [r.data for r in eager]
    assert len(compiled[0].data) == 40


def test_the_compiled_step_refuses_what_it_cannot_run():
    model = tiny_model()
    with pytest.raises(OmniByteError, match="KV cache"):
        CompiledDecodeStep(model)
    model.setup_kv_cache(batch_size=2)
    step = CompiledDecodeStep(model)
    with pytest.raises(OmniByteError, match="holds 2 streams, got 1"):
        step([65], 0)
    with pytest.raises(OmniByteError, match="outside the KV cache"):
        step([65, 66], model.config.max_seq_len)
    with pytest.raises(OmniByteError, match="token ids"):
        step([65, 999], 0)
    with pytest.raises(OmniByteError, match="got 3 positions"):
        step([65, 66], [0, 1, 2])
    with pytest.raises(OmniByteError, match="outside the KV cache"):
        step([65, 66], [0, -1])
    assert not compiled_decode_supported(model.to(torch.float64))
    with pytest.raises(OmniByteError, match="plain float32"):
        CompiledDecodeStep(model)


def test_warm_up_leaves_no_cache_behind():
    model = tiny_model()
    warm_up(model)
    assert model.blocks[0].attn.kv_cache is None
