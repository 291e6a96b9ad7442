import subprocess
import sys

import pytest
import torch

from omnibyte.errors import OmniByteError
from omnibyte.model.config import PRESETS, ModelConfig
from omnibyte.model.transformer import BytePredictor
from omnibyte.vocab import VOCAB_SIZE


def test_reference_preset_is_the_published_architecture():
    c = ModelConfig.from_name("reference")
    assert (c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.max_seq_len) == (1024, 12, 32, 8, 8192)
    assert c.vocab_size == VOCAB_SIZE == 256 + 6


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_without_torch_matches_the_built_model(name):
    config = ModelConfig.from_name(name)
    with torch.device("meta"):
        model = BytePredictor.build(config)
    assert config.parameter_count == model.num_parameters()


def test_mlp_width_defaults_to_the_llama_rule():
    assert ModelConfig(d_model=256, n_heads=8, n_kv_heads=2).mlp_hidden == 704


@pytest.mark.parametrize("overrides, message", [
    (dict(d_model=100, n_heads=8), "divisible"),
    (dict(n_heads=8, n_kv_heads=3), "multiple"),
    (dict(n_layers=0), "positive"),
    (dict(max_seq_len=-5), "positive"),
    (dict(vocab_size=100), "vocab_size"),
    (dict(d_model=24, n_heads=8, n_kv_heads=8), "even"),
])
def test_invalid_configs_are_refused_with_a_reason(overrides, message):
    with pytest.raises(OmniByteError, match=message):
        ModelConfig(**overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(OmniByteError, match="reference"):
        ModelConfig.from_name("huge")


def test_config_round_trips_through_a_dict():
    c = ModelConfig.from_name("demo")
    assert ModelConfig.from_dict(c.to_dict()) == c


def test_unknown_config_fields_are_refused():
    with pytest.raises(OmniByteError, match="unknown field"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "dropout": 0.1})


def test_config_module_imports_no_torch():
    code = "import sys, omnibyte.model.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
