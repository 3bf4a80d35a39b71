"""The DeepSpeed trainer on CPU (one process, gloo): each task trains, resume is exact,
fine-tuning starts from a pretraining run and from an HF folder, export round-trips."""
from __future__ import annotations

import json
import math

import pytest
import torch

from ds_w2v import build_model, load_model, save_model
from ds_w2v.models.wav2vec2.interop_hf import export_hf
from ds_w2v.train.checkpoint_export import export
from ds_w2v.train.checkpoint_tags import latest_tag
from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

pytest.importorskip("deepspeed")

# a tiny, fast and deterministic run: fp32, no LayerDrop, small batches, on the CPU (gloo) even
# where a GPU is visible
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu"]


def _config(recipe, shards, run_dir, *extra):
    return load_config(recipe, [f"data.shards={shards}", f"run_dir={run_dir}", *FAST, *extra])


def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["update"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_pretraining_logs_checkpoints_and_exports(timit_shards, tmp_path):
    run = tmp_path / "pt"
    result = Trainer(_config("pretrain_tiny", timit_shards, run, "max_updates=4", "save_every=2",
                             "eval_every=2", "keep_last=1")).train()
    assert result["updates"] == 4 and result["skipped_updates"] == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["update"] for r in train_rows] == [1, 2, 3, 4]
    for key in ("train/contrastive", "train/diversity", "train/feature_pen", "train/code_ppl", "train/prob_ppl",
                "train/temp", "train/acc", "opt/lr", "opt/grad_norm", "perf/audio_s_per_s", "perf/update_s"):
        assert all(key in r and math.isfinite(r[key]) for r in train_rows), key
    assert any("dev/loss" in r for r in rows)
    # the temperature follows the update counter: max(start * decay ** (update - 1), floor) at each
    # logged update, with the recipe's (start, floor, decay)
    start, floor, decay = load_config("pretrain_tiny", ["data.shards=/x"]).model.overrides["latent_temp"]
    assert [r["train/temp"] for r in train_rows] == pytest.approx([max(start * decay**u, floor) for u in range(4)])
    assert train_rows[-1]["train/temp"] < train_rows[0]["train/temp"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert latest_tag(run) == "update_00000004"
    tags = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("update_"))
    assert tags == ["update_00000004"]  # keep_last=1 pruned update 2
    model = load_model(export(run, tmp_path / "pt.pt", "update_00000004"))
    assert model.task == "pretrain" and model._num_updates == 4


@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
def test_resume_reproduces_the_uninterrupted_run(timit_shards, tmp_path, prefetch):
    """N updates straight vs N/2, stop, resume -> the same loss at every update and the same
    final parameters (CPU, fp32, tiny). With ``data.prefetch`` the feed holds one batch read ahead
    of training when the checkpoint is saved: the saved position must not count it."""
    n = 6
    opts = (f"max_updates={n}", f"data.prefetch={str(prefetch).lower()}")
    straight = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "a", *opts))
    straight.train()
    want = _losses(tmp_path / "a")

    first = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "b", *opts))
    for _ in range(n // 2):
        assert first.train_step()
        first.log()
    first.save()
    consumed = n // 2 * first.accum
    assert first.state_dict()["data"]["batches_in_epoch"] == consumed
    assert first.loader.batches_in_epoch == consumed + prefetch  # read one ahead: not saved
    first.logger.close()
    got = _losses(tmp_path / "b")
    assert sorted(got) == list(range(1, n // 2 + 1))
    del first  # "killed": nothing but the checkpoint survives
    resumed = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "b", *opts))
    assert resumed.update == n // 2
    resumed.train()
    got.update({u: v for u, v in _losses(tmp_path / "b").items() if u > n // 2})
    assert got == want  # bit-exact, every update
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctc_finetuning_from_a_pretraining_run(timit_shards, tmp_path):
    Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "pt", "max_updates=2")).train()
    run = tmp_path / "ctc"
    result = Trainer(_config("finetune_ctc_tiny", timit_shards, run, "max_updates=3", f"model.init={tmp_path / 'pt'}",
                             "freeze_transformer_updates=1", "eval_every=3", "eval_max_batches=2",
                             "model.overrides.feature_grad_mult=0.0")).train()
    assert result["task"] == "ctc" and result["updates"] == 3
    assert set(result["test"]) == {"loss", "wer", "cer", "num_utterances", "audio_s"} and 0 <= result["test"]["cer"]
    index = json.loads((timit_shards / "dataset.json").read_text())
    assert result["test"]["num_utterances"] == index["splits"]["test"]["num_samples"]
    model = load_model(export(run, tmp_path / "ctc.pt"))
    pre = load_model(export(tmp_path / "pt", tmp_path / "pt.pt"))
    # with feature_grad_mult 0 (BASE's fine-tuning; the tiny recipe trains it) the conv encoder is
    # frozen: identical to the pretrained one
    conv = "wav2vec2.feature_extractor.conv_layers.1.conv.weight"
    assert torch.equal(model.state_dict()[conv], pre.state_dict()[conv])
    assert model.vocab.to_dict() == json.loads((timit_shards / "dataset.json").read_text())["vocab"]


def test_classification_from_an_hf_folder(ravdess_shards, tmp_path):
    torch.manual_seed(0)
    export_hf(build_model("tiny", "pretrain"), tmp_path / "hf")
    result = Trainer(_config("finetune_cls_tiny", ravdess_shards, tmp_path / "cls", "max_updates=3",
                             f"model.init={tmp_path / 'hf'}", "freeze_transformer_updates=0", "eval_every=3")).train()
    assert result["task"] == "cls" and set(result["test"]) == {"loss", "acc", "f1", "num_utterances", "audio_s"}
    assert result["best_update"] == 3


def test_ctc_vocabulary_mismatch_is_refused(timit_shards, tmp_path):
    other = build_model("tiny", "ctc", vocab=["<pad>", "<s>", "</s>", "<unk>", "|", "x", "y"])
    save_model(other, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="vocabulary .* differs from the data's"):
        Trainer(_config("finetune_ctc_tiny", timit_shards, tmp_path / "r", f"model.init={tmp_path / 'other.pt'}"))


def test_activation_checkpointing_gives_the_same_updates(timit_shards, tmp_path):
    """Recomputing encoder blocks in backward changes memory, not results (RNG state is replayed)."""
    plain = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "plain", "max_updates=2"))
    plain.train()
    ckpt = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "ac", "max_updates=2",
                           "activation_checkpointing=all"))
    assert ckpt.module.wav2vec2.encoder.checkpoint_layers == {0, 1, 2, 3}
    ckpt.train()
    assert _losses(tmp_path / "plain") == _losses(tmp_path / "ac")
    a, b = plain.module.state_dict(), ckpt.module.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_resume_knows_a_best_saved_after_latest(ravdess_shards, tmp_path):
    """Killed after a new best but before the next periodic save: latest's state predates that
    best; the resumed trainer takes the best value and update from the best checkpoint."""
    from ds_w2v.train.checkpoint_tags import best_tag

    run = tmp_path / "cls"
    config = _config("finetune_cls_tiny", ravdess_shards, run, "max_updates=4", "eval_every=1", "best_metric=loss",
                     "eval_max_batches=1", "freeze_transformer_updates=0")
    first = Trainer(config)
    assert first.train_step()
    first.save()  # latest: update 1, no best yet
    first._eval_dev()  # the first dev score is a best: saved at update 1, after latest
    value = first.state.best
    assert first.state.best_update == 1 and best_tag(run) == "best_update_00000001"
    first.logger.close()
    del first  # "killed"
    resumed = Trainer(config)
    assert resumed.update == 1
    assert resumed.state.best_update == 1 and resumed.state.best == value


def test_max_train_s_stops_cleanly_before_max_updates(timit_shards, tmp_path):
    """A time budget smaller than one update: one update, then the run ends as a finished run
    does (a checkpoint at that update, results.json saying why it stopped)."""
    run = tmp_path / "pt"
    result = Trainer(_config("pretrain_tiny", timit_shards, run, "max_updates=50", "max_train_s=0.001")).train()
    assert result["updates"] == 1 and result["stopped_by"] == "max_train_s"
    assert latest_tag(run) == "update_00000001"
    assert sorted(_losses(run)) == [1]
    assert json.loads((run / "results.json").read_text())["stopped_by"] == "max_train_s"


def test_a_three_corpus_mix_trains_logs_its_shares_and_resumes_exactly(timit_shards, tmp_path):
    """``data.train`` with three corpora (here three splits of one prepared folder, weights 2:1:1):
    each batch is drawn from one, the shares are logged, and a stop + resume gives the losses of
    the uninterrupted run bit for bit."""
    mix = f"data.train=[{timit_shards}:train@2,{timit_shards}:dev,{timit_shards}:test]"
    extra = ("max_updates=6", mix, "data.dev_split=null", "data.test_split=null")
    Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "a", *extra)).train()
    want = _losses(tmp_path / "a")
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "train/loss" in r][-1]
    shares = {k: v for k, v in last.items() if k.startswith("data/mix/") and k.endswith("/share")}
    assert len(shares) == 3 and sum(shares.values()) == pytest.approx(1.0)
    first = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "b", *extra))
    for _ in range(3):
        assert first.train_step()
        first.log()
    first.save()
    first.logger.close()
    del first
    resumed = Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "b", *extra))
    assert resumed.update == 3
    resumed.train()
    assert _losses(tmp_path / "b") == want


def test_a_mix_with_an_unknown_split_is_refused_naming_it(timit_shards, tmp_path):
    with pytest.raises(ValueError, match="no split 'nope'"):
        Trainer(_config("pretrain_tiny", timit_shards, tmp_path / "r", f"data.train=[{timit_shards}:nope]"))
