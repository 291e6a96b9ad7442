import pytest
import torch

from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import BytePredictor


def tiny_model(seed: int = 0, **overrides) -> BytePredictor:
    torch.manual_seed(seed)
    return BytePredictor(ModelConfig.from_name("tiny", **overrides)).eval()


@pytest.fixture
def model() -> BytePredictor:
    return tiny_model()


@pytest.fixture(scope="session", autouse=True)
def compiled_decoding_ready():
    """Compile the decoding steps for the tiny and demo shapes once, before any test: on a fresh
    clone Numba's disk cache is empty, and a test with a time limit should not pay for it."""
    from omnibyte.model import deterministic
    from omnibyte.model.compiled_decode import warm_up

    deterministic.warm_up(tiny_model())
    warm_up(tiny_model())
    torch.manual_seed(0)
    warm_up(BytePredictor(ModelConfig.from_name("demo", max_seq_len=64)))
