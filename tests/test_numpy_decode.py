import numpy as np
import pytest
import torch

from conftest import tiny_model
from omnibyte.errors import OmniByteError
from omnibyte.generate import decode_one, prefill
from omnibyte.numpy_decode import NumpyDecodeStep, numpy_decode_supported

TOKENS = torch.tensor([[256, 258] + list(b"numpy and torch agree, byte by byte")])


def model_with_every_weight_set(n_kv_heads: int):
    """A tiny model whose norm gains are not all ones, so folding them into matrices is tested."""
    model = tiny_model(n_kv_heads=n_kv_heads)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_numpy_step_gives_the_logits_of_torch_decoding(n_kv_heads):
    model = model_with_every_weight_set(n_kv_heads)
    with torch.inference_mode():
        full = model(TOKENS)[0]  # (T, vocab)
        model.setup_kv_cache(batch_size=1)
        prefill(model, TOKENS[:, :5])
        step = NumpyDecodeStep(model)
        ours = [step(int(TOKENS[0, pos]), pos) for pos in range(5, TOKENS.size(1))]
    np.testing.assert_allclose(np.stack(ours), full[5:].numpy(), atol=2e-4, rtol=1e-4)


def test_numpy_and_torch_steps_share_one_cache():
    # torch decodes some positions, numpy the next, torch again: the cache is one and the same
    model = model_with_every_weight_set(2)
    with torch.inference_mode():
        full = model(TOKENS)[0]
        model.setup_kv_cache(batch_size=1)
        prefill(model, TOKENS[:, :4])
        step = NumpyDecodeStep(model)
        for pos in range(4, 10):
            step(int(TOKENS[0, pos]), pos)
        torch_logits = decode_one(model, TOKENS[:, 10:11], 10)[0]
        numpy_logits = step(int(TOKENS[0, 11]), 11)
    torch.testing.assert_close(torch_logits, full[10], atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(numpy_logits, full[11].numpy(), atol=2e-4, rtol=1e-4)


def test_the_numpy_step_is_only_for_one_float32_stream_with_a_cache():
    model = tiny_model()
    with pytest.raises(OmniByteError, match="KV cache"):
        NumpyDecodeStep(model)
    model.setup_kv_cache(batch_size=2)
    assert not numpy_decode_supported(model, 2)
    with pytest.raises(OmniByteError, match="one float32 stream"):
        NumpyDecodeStep(model)
    model.setup_kv_cache(batch_size=1)
    with pytest.raises(OmniByteError, match="outside the KV cache"):
        NumpyDecodeStep(model)(65, model.config.max_seq_len)
