import pytest
import torch

from omnibyte.config import ModelConfig
from omnibyte.model import BytePredictor


def tiny_model(seed: int = 0, **overrides) -> BytePredictor:
    torch.manual_seed(seed)
    return BytePredictor(ModelConfig.from_name("tiny", **overrides)).eval()


@pytest.fixture
def model() -> BytePredictor:
    return tiny_model()
