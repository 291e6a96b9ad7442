"""The architecture trials' variants: a flat model with an attention window, and the patched model."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import BytePredictor, local_causal_attention
from omnibyte.tools.score import score_bytes


@pytest.mark.parametrize("seq, window", [(37, 8), (64, 16), (5, 8), (16, 16)])
def test_local_attention_equals_full_attention_with_a_band_mask(seq, window):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, seq, 8), torch.randn(2, 2, seq, 8), torch.randn(2, 2, seq, 8)
    i = torch.arange(seq)
    band = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                              attn_mask=band)
    assert torch.allclose(local_causal_attention(q, k, v, window), expected, atol=1e-5)


def test_a_windowed_model_sees_no_further_back_than_its_window_and_decodes_as_it_trains():
    torch.manual_seed(0)
    model = BytePredictor(ModelConfig.from_name("tiny", attention_window=8)).eval()
    idx = torch.randint(0, 256, (1, 40))
    changed = idx.clone()
    changed[0, 3] += 1
    with torch.no_grad():
        full, moved = model(idx), model(changed)
        # position 3 reaches position 3 + 7 directly and, through the layers below, 7 further
        assert torch.allclose(full[0, 3 + 2 * 7 + 1:], moved[0, 3 + 2 * 7 + 1:], atol=1e-6)
        assert not torch.allclose(full[0, 3:11], moved[0, 3:11])
        model.setup_kv_cache(1)
        logits = [model(idx[:, :20], start_pos=0)[:, -1]]
        for pos in range(20, 40):
            logits.append(model(idx[:, pos:pos + 1], start_pos=pos)[:, -1])
    assert torch.allclose(torch.stack(logits[:-1], dim=1), full[:, 19:39], atol=1e-4)


def test_a_windowed_model_runs_the_compiled_steps_generates_and_compresses():
    # the demo and the coder run a windowed checkpoint through their compiled steps, as the flat one
    from omnibyte.generation.generate import SamplingParams, generate
    from omnibyte.model.compiled_decode import compiled_decode_supported
    from omnibyte.tools.compress import compress_bytes, decompress_bytes

    model = BytePredictor(ModelConfig.from_name("tiny", attention_window=8)).eval()
    assert compiled_decode_supported(model)
    params = SamplingParams(max_new_bytes=30, temperature=0, stop_at_doc_end=False)
    prompt = [256] + list(b"a window of eight")
    compiled, eager = (generate(model, prompt, params, compiled_step=c)[0].data for c in (True, False))
    assert compiled == eager and len(compiled) == 30
    data = b"slides past its window of eight bytes, and back again " * 2
    assert decompress_bytes(model, compress_bytes(model, data)) == data


def test_the_patched_model_is_causal_and_scores_like_the_flat_one():
    torch.manual_seed(0)
    model = BytePredictor.build(ModelConfig.from_name("tiny-patched")).eval()
    assert type(model).__name__ == "PatchedBytePredictor"
    assert model.num_parameters() == model.config.parameter_count
    idx = torch.randint(0, 256, (2, 37))
    changed = idx.clone()
    changed[:, 20] = (changed[:, 20] + 1) % 256
    with torch.no_grad():
        logits, moved = model(idx), model(changed)
    assert logits.shape == (2, 37, 262)
    assert torch.equal(logits[:, :20], moved[:, :20]) and not torch.allclose(logits[:, 20:], moved[:, 20:])
    scores = score_bytes(model, bytes(range(100)))
    assert scores.surprisal_bits.shape == (100,) and 0 < scores.bits_per_byte < 20


def test_a_patched_checkpoint_round_trips_and_what_it_cannot_do_yet_is_refused(tmp_path):
    from omnibyte.tools.compress import compress_bytes

    model = BytePredictor.build(ModelConfig.from_name("tiny-patched")).eval()
    model.save_pretrained(tmp_path / "patched")
    assert json.loads((tmp_path / "patched" / "config.json").read_text())["patch_size"] == 4
    loaded = BytePredictor.from_pretrained(tmp_path / "patched")
    idx = torch.randint(0, 256, (1, 30))
    assert type(loaded) is type(model) and torch.equal(loaded(idx), model(idx))
    with pytest.raises(OmniByteError, match="architecture trials"):
        compress_bytes(loaded, b"hello world")


def test_a_flat_config_is_written_as_before_the_trials():
    # the new fields are written only when set: checkpoints and .omb fingerprints stay as they were
    assert set(ModelConfig.from_name("demo").to_dict()) == {"d_model", "n_layers", "n_heads", "n_kv_heads",
                                                            "max_seq_len", "mlp_hidden", "vocab_size", "rope_base",
                                                            "norm_eps"}
    assert ModelConfig.from_name("demo-local").to_dict()["attention_window"] == 256
    with pytest.raises(OmniByteError, match="divisible by patch_size"):
        ModelConfig.from_name("tiny-patched", max_seq_len=66)


def test_a_cpu_budget_ends_the_run_and_its_schedule(tmp_path):
    from omnibyte.training.train import lr_at, train
    from tests.test_train import tiny_config

    cfg = tiny_config(tmp_path, max_steps=100_000, cpu_minutes=0.02, warmup_steps=2, eval_interval=1000)
    assert lr_at(50, cfg, cpu_s=0.0) == pytest.approx(cfg.lr, rel=1e-3)  # the step count alone: barely begun
    assert lr_at(50, cfg, cpu_s=0.6) == pytest.approx(cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr), rel=1e-3)
    assert lr_at(50, cfg, cpu_s=5.0) == pytest.approx(cfg.min_lr)
    result = train(cfg, progress=False)
    assert 0 < result["step"] < 100_000
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    spent = [r["cpu_s"] for r in log if "cpu_s" in r]
    assert spent and spent[-1] <= 1.2 + 0.5 and np.all(np.diff(spent) >= 0)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["cpu_s"] >= 1.2


def test_the_patched_model_decodes_with_its_cache_as_it_scores_without():
    from omnibyte.generation.generate import SamplingParams, generate

    torch.manual_seed(0)
    model = BytePredictor.build(ModelConfig.from_name("tiny-patched")).eval()
    idx = torch.randint(0, 256, (2, 50))
    with torch.no_grad():
        full = model(idx)
        model.setup_kv_cache(2)
        steps = [model(idx[:, :13], start_pos=0, last_only=True)[:, -1]]  # a prefill ending mid-patch
        steps += [model(idx[:, pos:pos + 1], start_pos=pos)[:, -1] for pos in range(13, 49)]
        assert torch.allclose(torch.stack(steps, dim=1), full[:, 12:49], atol=1e-5)
        with pytest.raises(OmniByteError, match="fed in order"):
            model(idx[:, :1], start_pos=7)
    # through stream_generate, past the end of the 64-token context (the window slides), greedy
    # and guided alike
    for guidance in (1.0, 3.0):
        result = generate(model, [256, 258, 65, 66, 259], SamplingParams(max_new_bytes=150, temperature=0,
                                                                       stop_at_doc_end=False,
                                                                       guidance_scale=guidance))[0]
        assert len(result.data) == 150


def test_the_value_head_adds_a_bump_over_byte_values_only():
    torch.manual_seed(0)
    model = BytePredictor.build(ModelConfig.from_name("tiny-value")).eval()
    assert model.num_parameters() == model.config.parameter_count
    idx = torch.randint(0, 256, (2, 20))
    with torch.no_grad():
        logits = model(idx)
        plain = model.lm_head(model.norm(_hidden(model, idx)))
    assert logits.shape == (2, 20, 262)
    assert torch.allclose(logits[..., 256:], plain[..., 256:], atol=1e-5)  # control tokens untouched
    # a strong weight, centre 100, scale 1: byte 100 is far likelier than byte 110, however the rest
    with torch.no_grad():
        model.value_head.proj.weight.zero_()
        model.value_head.proj.bias.copy_(torch.tensor([float(np.arctanh((100 - 127.5) / 128)), np.log(1 / 8), 1.0]))
        bumped = model(idx)
    gain = (bumped - logits)[..., :256]
    assert (gain[..., 100] - gain[..., 110] > 9).all() and (gain[..., 99] - gain[..., 90] > 8).all()


def _hidden(model: BytePredictor, idx: torch.Tensor) -> torch.Tensor:
    x = model.tok_embeddings(idx)
    for block in model.blocks:
        x = block(x, model.rope_cos[:idx.shape[1]], model.rope_sin[:idx.shape[1]], None, True, None)
    return x


def test_a_value_head_grows_on_trained_weights_and_is_refused_where_it_cannot_run(tmp_path):
    from omnibyte.generation.generate import SamplingParams, stream_generate
    from omnibyte.model.compiled_decode import compiled_decode_supported
    from omnibyte.tools.compress import compress_bytes
    from omnibyte.training.train import train
    from tests.test_train import tiny_config

    base = BytePredictor.build(ModelConfig.from_name("tiny")).eval()
    base.save_pretrained(tmp_path / "base")
    cfg = tiny_config(tmp_path, init_from=str(tmp_path / "base"), model_overrides={"value_head": True},
                      max_steps=4, warmup_steps=1, eval_interval=1000)
    train(cfg, progress=False)
    grown = BytePredictor.from_pretrained(tmp_path / "run")
    assert grown.config.value_head and json.loads((tmp_path / "run" / "config.json").read_text())["value_head"]
    assert not torch.equal(grown.lm_head.weight, base.lm_head.weight)  # trained on, from the base's weights
    with pytest.raises(OmniByteError, match="a value head or an attention window, nothing else"):
        train(tiny_config(tmp_path, init_from=str(tmp_path / "base"), model_overrides={"d_model": 64},
                          out_dir=str(tmp_path / "wider")), progress=False)
    # trained weights learning to work within a window: the same weights, a windowed config
    train(tiny_config(tmp_path, init_from=str(tmp_path / "base"), model_overrides={"attention_window": 8},
                      out_dir=str(tmp_path / "windowed"), max_steps=2, warmup_steps=1, eval_interval=1000),
          progress=False)
    windowed = BytePredictor.from_pretrained(tmp_path / "windowed")
    assert windowed.config.attention_window == 8 and compiled_decode_supported(windowed)
    assert windowed.state_dict().keys() == base.state_dict().keys()
    assert not compiled_decode_supported(grown)
    written = b"".join(c.data for c in stream_generate(grown, [256], SamplingParams(max_new_bytes=20, seed=0)))
    assert 0 < len(written) <= 20
    with pytest.raises(OmniByteError, match="value head"):
        compress_bytes(grown, b"hello world")
