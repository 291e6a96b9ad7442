import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from omnibyte.errors import OmniByteError
from omnibyte.model.config import ModelConfig
from omnibyte.model.transformer import BytePredictor
from omnibyte.training import train as train_module
from omnibyte.training.train import TOKEN_DTYPE, TokenStream, TrainConfig, lr_at, train
from omnibyte.vocab import ControlToken

ROOT = Path(__file__).resolve().parent.parent


def write_corpus(folder: Path, documents: int = 200, seed: int = 0) -> Path:
    """A tiny corpus of patterned documents, as the corpus builder writes them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", documents), ("val", documents // 4)):
        tokens: list[int] = []
        for _ in range(count):
            letter = int(rng.integers(97, 123))
            tokens += [ControlToken.DOC_START, ControlToken.TEXT] + [letter, letter + 1 if letter < 122 else 97] * 8
            tokens.append(ControlToken.DOC_END)
        np.asarray(tokens, dtype=TOKEN_DTYPE).tofile(folder / f"{split}.tokens")
    return folder


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    corpus = write_corpus(tmp_path / "corpus")
    settings = dict(train_tokens=str(corpus / "train.tokens"), val_tokens=str(corpus / "val.tokens"),
                    out_dir=str(tmp_path / "run"), preset="tiny", seq_len=32, batch_size=4, max_steps=40,
                    lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_interval=20, eval_batches=2, log_interval=5)
    return TrainConfig(**{**settings, **overrides})


def test_training_lowers_the_held_out_loss(tmp_path):
    cfg = tiny_config(tmp_path)
    before = train_module.validation_loss(BytePredictor(train_module.ModelConfig.from_name("tiny")),
                                   TokenStream(train_module.load_tokens(cfg.val_tokens), 32, 0), cfg,
                                   torch.device("cpu"))
    result = train(cfg, progress=False)
    assert result["step"] == 40
    assert result["val_loss"] < 0.6 * before
    run = Path(cfg.out_dir)
    assert (run / "model.safetensors").exists() and (run / "best" / "config.json").exists()
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in records) and any(r.get("tokens_per_s") for r in records)


def test_windows_carry_document_ids_that_start_at_each_doc_start():
    tokens = np.array([ControlToken.DOC_START, 1, 2, ControlToken.DOC_START, 3, 4, 5], dtype=TOKEN_DTYPE)
    x, y, doc_ids = TokenStream(tokens, 6, 0).windows(np.array([0]))
    assert doc_ids.tolist() == [[1, 1, 1, 2, 2, 2]]
    assert y.tolist() == [[1, 2, ControlToken.DOC_START, 3, 4, 5]]


def test_mixed_streams_draw_windows_by_share():
    first = np.full(500, 1, dtype=TOKEN_DTYPE)
    second = np.full(500, 2, dtype=TOKEN_DTYPE)
    x, _, _ = TokenStream([first, second], 8, seed=0, weights=[0.25, 0.75]).batch(400)
    share_second = float((x[:, 0] == 2).float().mean())
    assert 0.68 < share_second < 0.82
    x, _, _ = TokenStream([first, second], 8, seed=0, weights=[0.0, 1.0]).batch(20)
    assert (x == 2).all()
    with pytest.raises(OmniByteError, match="weight"):
        TokenStream([first, second], 8, seed=0, weights=[1.0])


def test_aligned_windows_start_at_a_document_start():
    rng = np.random.default_rng(0)
    tokens = []
    for _ in range(100):
        tokens += [ControlToken.DOC_START] + rng.integers(0, 256, size=int(rng.integers(3, 30))).tolist()
    stream = TokenStream(np.asarray(tokens, dtype=TOKEN_DTYPE), 16, seed=1, align_documents=True)
    x, _, doc_ids = stream.batch(50)
    assert (x[:, 0] == ControlToken.DOC_START).all() and (doc_ids[:, 0] == 1).all()
    with pytest.raises(OmniByteError, match="no document starts"):
        TokenStream(np.array([1] * 40, dtype=TOKEN_DTYPE), 16, seed=1, align_documents=True)


def test_alignment_can_be_chosen_per_stream():
    rng = np.random.default_rng(0)
    tokens = []
    for _ in range(200):
        tokens += [ControlToken.DOC_START] + rng.integers(0, 256, size=int(rng.integers(3, 30))).tolist()
    tokens = np.asarray(tokens, dtype=TOKEN_DTYPE)
    loose = np.full(400, 7, dtype=TOKEN_DTYPE)  # no document starts: must not be scanned for one
    stream = TokenStream([loose, tokens], 16, seed=1, weights=[0.5, 0.5], align_documents=[False, True])
    x, _, _ = stream.batch(200)
    from_loose = (x == 7).all(1)
    assert 50 < int(from_loose.sum()) < 150
    assert (x[~from_loose][:, 0] == ControlToken.DOC_START).all()
    with pytest.raises(OmniByteError, match="one align_documents flag per token stream"):
        TokenStream([loose, tokens], 16, seed=1, weights=[0.5, 0.5], align_documents=[True])


def test_training_on_a_mix_of_corpora_runs_and_refuses_bad_shares(tmp_path):
    other = write_corpus(tmp_path / "other", seed=1)
    cfg = tiny_config(tmp_path, max_steps=6, eval_interval=6, mix=[(other / "train.tokens", 0.5)],
                      align_documents=True, align_main_corpus=False)
    assert cfg.stream_weights() == [0.5, 0.5]
    assert train(cfg, progress=False)["step"] == 6
    for shares in ([0.0], [1.0], [0.6, 0.5]):
        with pytest.raises(OmniByteError, match="mix share"):
            tiny_config(tmp_path, mix=[(other / "train.tokens", share) for share in shares])


def test_learning_rate_warms_up_then_decays_to_the_floor(tmp_path):
    cfg = tiny_config(tmp_path, max_steps=100, warmup_steps=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, optimizer):
    straight = tiny_config(tmp_path / "a", max_steps=12, eval_interval=4, optimizer=optimizer)
    train(straight, progress=False)

    resumed = tiny_config(tmp_path / "b", max_steps=12, eval_interval=4, optimizer=optimizer)
    real_lr_at = train_module.lr_at

    def interrupt_at_step_6(step, cfg, cpu_s=0.0):
        if step == 6:
            raise KeyboardInterrupt
        return real_lr_at(step, cfg, cpu_s)

    monkeypatch.setattr(train_module, "lr_at", interrupt_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(resumed, progress=False)
    monkeypatch.setattr(train_module, "lr_at", real_lr_at)
    assert train(resumed, progress=False)["step"] == 12

    a = BytePredictor.from_pretrained(straight.out_dir).state_dict()
    b = BytePredictor.from_pretrained(resumed.out_dir).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_muon_trains_the_blocks_matrices_and_adamw_the_rest(tmp_path):
    cfg = tiny_config(tmp_path, optimizer="muon")
    optimizer = train_module.make_optimizer(BytePredictor.build(ModelConfig.from_name(cfg.preset)), cfg)
    assert isinstance(optimizer.parts[0], torch.optim.Muon) and isinstance(optimizer.parts[1], torch.optim.AdamW)
    assert all(p.dim() == 2 for group in optimizer.parts[0].param_groups for p in group["params"])
    result = train(cfg, progress=False)
    assert result["val_loss"] < math.log(26)  # learning: below a uniform guess among the 26 letters


def test_a_run_resumes_only_with_the_optimizer_it_was_trained_with(tmp_path):
    train(tiny_config(tmp_path, max_steps=8, warmup_steps=2, eval_interval=4), progress=False)
    with pytest.raises(OmniByteError, match="trained with adamw; resume it with --optimizer adamw"):
        train(tiny_config(tmp_path, max_steps=12, warmup_steps=2, eval_interval=4, optimizer="muon"), progress=False)


def test_bad_training_settings_are_refused(tmp_path):
    with pytest.raises(OmniByteError, match="optimizer 'sgd'"):
        tiny_config(tmp_path, optimizer="sgd")
    with pytest.raises(OmniByteError, match="min_lr"):
        tiny_config(tmp_path, lr=1e-3, min_lr=1e-2)
    with pytest.raises(OmniByteError, match="warmup"):
        tiny_config(tmp_path, warmup_steps=40)
    with pytest.raises(OmniByteError, match="not found"):
        train(TrainConfig(train_tokens=str(tmp_path / "no"), val_tokens=str(tmp_path / "no"),
                          out_dir=str(tmp_path / "r"), preset="tiny", seq_len=8), progress=False)


def test_training_runs_distributed_on_two_cpu_processes(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "omnibyte", "train", "--corpus", str(corpus), "--out", str(out), "--preset", "tiny",
           "--seq-len", "32", "--batch-size", "2", "--max-steps", "6", "--warmup-steps", "1",
           "--eval-interval", "3", "--eval-batches", "1", "--threads", "1", "--quiet"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"step": 6' in proc.stderr
    assert (out / "model.safetensors").exists()


def test_a_run_can_start_from_a_checkpoints_weights(tmp_path):
    first = train(tiny_config(tmp_path, max_steps=40), progress=False)
    start = BytePredictor.from_pretrained(Path(tmp_path / "run"))
    start.save_pretrained(tmp_path / "half", dtype=torch.float16)  # as shipped: half precision
    cfg = tiny_config(tmp_path, out_dir=str(tmp_path / "tuned"), max_steps=1, warmup_steps=0, lr=1e-9, min_lr=1e-9,
                      eval_interval=1, preset="demo", init_from=str(tmp_path / "half"))
    tuned = train(cfg, progress=False)
    # the checkpoint's config, not the preset's; its weights, so its loss, not a random model's
    assert BytePredictor.from_pretrained(tmp_path / "tuned").config == start.config
    assert tuned["val_loss"] == pytest.approx(first["val_loss"], abs=0.05)


def test_a_recipe_file_sets_the_run_and_the_command_line_overrides_it(tmp_path, monkeypatch, capsys):
    from omnibyte.cli import main

    corpus = write_corpus(tmp_path / "corpus")
    write_corpus(tmp_path / "other", seed=1)
    recipe = tmp_path / "run.toml"
    recipe.write_text(f'corpus = "{corpus}"\nout = "{tmp_path / "run"}"\npreset = "tiny"\nseq_len = 32\n'
                      f'batch_size = 2\nmax_steps = 50\nwarmup_steps = 1\neval_interval = 3\neval_batches = 1\n'
                      f'mix = ["{tmp_path / "other"}:0.25"]\nalign_documents = true\nlr = 1e-3\nmin_lr = 1e-4\n'
                      f'attention_window = 16\n')
    seen = {}
    monkeypatch.setattr(train_module, "train", lambda cfg, resume, progress: seen.update(cfg=cfg) or {})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.update(threads=n))  # recipes set 1
    assert main(["train", "--recipe", str(recipe), "--max-steps", "4", "--quiet"]) == 0
    cfg = seen["cfg"]
    assert (cfg.max_steps, cfg.seq_len, cfg.preset, cfg.lr, cfg.align_documents) == (4, 32, "tiny", 1e-3, True)
    assert cfg.mix == [(str(tmp_path / "other" / "train.tokens"), 0.25)] and cfg.out_dir == str(tmp_path / "run")
    assert cfg.weight_decay == TrainConfig.weight_decay  # what neither sets is TrainConfig's own
    assert cfg.model_overrides == {"attention_window": 16}
    # the committed recipes name only options train takes, with values it accepts
    for committed in sorted((ROOT / "recipes").glob("*.toml")):
        seen.clear()
        assert main(["train", "--recipe", str(committed), "--quiet"]) == 0 and seen["cfg"].max_steps > 0


def test_a_bad_recipe_is_refused_with_what_is_wrong(tmp_path, capsys):
    from omnibyte.cli import main

    cases = {"unknown.toml": ('corpus = "c"\nout = "o"\nlearning_rate = 1\n', "sets learning_rate, which train"),
             "broken.toml": ("corpus = \n", "is not valid TOML"),
             "value.toml": ('corpus = "c"\nout = "o"\nmax_steps = -3\n', "has a value train refuses"),
             "missing.toml": ('seq_len = 32\n', "train needs --corpus and --out")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["train", "--recipe", str(tmp_path / name)]) != 0
        assert message in capsys.readouterr().err, name
