"""Phone CTC (``data.target=phones``): TIMIT's 39 folded phones as targets, scored by PER — the
metric on a worked example, targets from the records, a tiny run through the Trainer from a
pretraining model (dev/per, test PER, the best checkpoint, ``ds-w2v evaluate`` and ``transcribe``
on the result), bad inputs refused in one line, and the console script."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from ds_w2v import build_model, load_model, save_model
from ds_w2v.cli import main as cli
from ds_w2v.data.batching import Batch
from ds_w2v.data.index import read_split
from ds_w2v.data.sources.timit import PHONES_39
from ds_w2v.text import SPECIAL_TOKENS, CharVocab
from ds_w2v.train.config import load_config
from ds_w2v.train.tasks import TASK_CLASSES, PhoneCTCTask, task_for_model
from ds_w2v.train.tasks.phone_ctc import PHONE_VOCAB

# the same tiny, fast, deterministic settings as test_trainer.py
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu"]
BIN = Path(sys.executable).parent


def _config(shards, run_dir, *extra):
    return load_config("finetune_ctc_tiny", [f"data.shards={shards}", f"run_dir={run_dir}", *FAST,
                                             "data.target=phones", *extra])


def _task(shards, tmp_path) -> PhoneCTCTask:
    config = _config(shards, tmp_path / "run")
    return TASK_CLASSES[config.task](config, read_split(shards, "train"))


def _records(shards: Path, split: str, n: int) -> list[dict]:
    """The first ``n`` JSON records of ``split``'s first shard."""
    name = json.loads((shards / "dataset.json").read_text())["splits"][split]["shards"][0]
    with tarfile.open(shards / name) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".json")][:n]
        return [json.loads(tar.extractfile(m).read()) for m in members]


def _batch(records: list[dict]) -> Batch:
    n = 16_000  # 1 s of silence each: these tests read the targets, not the audio
    return Batch(torch.zeros(len(records), n), torch.full((len(records),), n), [r["id"] for r in records],
                 [r["text"] for r in records], [None] * len(records), records)


def test_the_target_chooses_the_task_in_one_place():
    base = load_config("finetune_ctc_tiny", ["data.shards=/x"])
    assert (base.task, base.data.target, base.best_metric) == ("ctc", "chars", "cer")
    phones = load_config("finetune_ctc_tiny", ["data.shards=/x", "data.target=phones"])
    # the recipe's cer is a character metric: under phones the best checkpoint is chosen on PER
    assert (phones.task, phones.best_metric) == ("phone_ctc", "per")
    assert load_config("finetune_ctc_tiny", ["data.shards=/x", "data.target=phones", "best_metric=loss"]).best_metric \
        == "loss"
    with pytest.raises(ValueError, match="config key best_metric: 'acc' is not a dev metric of task phone_ctc: "
                                         "per, loss"):
        load_config("finetune_ctc_tiny", ["data.shards=/x", "data.target=phones", "best_metric=acc"])
    with pytest.raises(ValueError, match="config key data.target: 'phonemes' is not a target of task ctc: "
                                         "chars, phones"):
        load_config("finetune_ctc_tiny", ["data.shards=/x", "data.target=phonemes"])
    with pytest.raises(ValueError, match="config key data.target: 'phones': task cls reads no transcripts"):
        load_config("finetune_cls_tiny", ["data.shards=/x", "data.target=phones"])


def test_the_phone_vocabulary_is_the_39_folded_phones_and_decodes_with_spaces():
    assert PHONE_VOCAB.tokens == [*SPECIAL_TOKENS, *PHONES_39] and len(PHONES_39) == 39
    ids = PHONE_VOCAB.to_dict()
    # frames: blank, sil, sil, blank, dh, dh, ah, blank, ah -> sil dh ah ah (a blank splits a repeat)
    frames = [0, ids["sil"], ids["sil"], 0, ids["dh"], ids["dh"], ids["ah"], 0, ids["ah"]]
    assert PHONE_VOCAB.decode_ctc(frames) == "sil dh ah ah"
    chars = CharVocab.build(["the cat"])  # characters still decode as text, no spaces between them
    assert chars.decode(chars.encode("the cat")) == "the cat"
    model = build_model("tiny", "ctc", vocab=PHONE_VOCAB)
    assert task_for_model(model) is PhoneCTCTask
    assert task_for_model(build_model("tiny", "ctc", vocab=chars)).name == "ctc"


def test_per_is_the_edit_distance_over_the_reference_phones(timit_shards, tmp_path):
    task = _task(timit_shards, tmp_path)
    refs = ["sil dh ah k ae t sil", "sil sh iy sil"]
    # utterance 1, by hand: sil deleted, ae -> eh substituted, a second t inserted: 3 edits over 7
    # phones (dh ah k t sil align). Utterance 2: nothing recognised, 4 deletions over 4 phones.
    hyps = ["dh ah k eh t t sil", ""]
    sums = task.error_sums(refs, hyps)
    assert sums == {"phone_err": 3 + 4, "phones": 7 + 4}
    metrics = task.eval_metrics({**sums, "loss": 10.0, "n": 2})
    # the corpus's edits over its phones (7/11), not the mean of the utterances' rates ((3/7 + 1) / 2)
    assert metrics == pytest.approx({"per": 7 / 11, "loss": 5.0})
    assert task.eval_metrics({**task.error_sums(refs, refs), "loss": 0.0, "n": 2})["per"] == 0.0


def test_targets_are_the_records_phones(timit_shards, tmp_path):
    task = _task(timit_shards, tmp_path)
    records = _records(timit_shards, "train", 3)
    assert all(r["phones"] for r in records)
    targets = task.targets(task.references(_batch(records)), "cpu")
    assert targets.shape == (3, max(len(r["phones"]) for r in records))
    for row, record in zip(targets.tolist(), records):
        ids = [i for i in row if i != -100]
        assert len(ids) == len(record["phones"])  # one label a phone, the rest padding
        assert [PHONE_VOCAB.tokens[i] for i in ids] == record["phones"]
        assert min(ids) >= len(SPECIAL_TOKENS)  # never a blank or another special


def test_a_record_without_phones_is_refused_at_the_first_batch_naming_it(timit_shards, tmp_path):
    task = _task(timit_shards, tmp_path)
    records = _records(timit_shards, "train", 2)
    records[1] = {**records[1], "phones": None}
    model = task.build_model(None)
    with pytest.raises(ValueError, match=f"data.target=phones: utterance {records[1]['id']} has no phones"):
        task.step(model, _batch(records))
    records[1]["phones"] = ["sil", "ao", "sil"]  # ao folds to aa: not one of the 39
    with pytest.raises(ValueError, match=rf"utterance {records[1]['id']} has phones \['ao'\] outside the 39"):
        task.step(model, _batch(records))


def test_a_corpus_without_phones_and_a_character_model_are_refused(timit_shards, tmp_path):
    pytest.importorskip("deepspeed")
    from ds_w2v.train.trainer import Trainer

    # the same shards, indexed as another format's: its records would carry no phones
    other = tmp_path / "librispeech"
    other.mkdir()
    index = json.loads((timit_shards / "dataset.json").read_text())
    index["source"]["format"] = "librispeech"
    (other / "dataset.json").write_text(json.dumps(index))
    for name in ("vocab.json", *(s for split in index["splits"].values() for s in split["shards"])):
        os.symlink(timit_shards / name, other / name)
    with pytest.raises(ValueError, match=f"data.target=phones: {other} holds librispeech shards, whose records "
                                         "carry no phones"):
        Trainer(_config(other, tmp_path / "r1"))
    assert not (tmp_path / "r1").exists()  # refused before anything was written
    with pytest.raises(ValueError, match=f"data.target=phones: {other} holds librispeech shards"):  # in a mix too
        Trainer(_config(timit_shards, tmp_path / "r3", f"data.train=[{timit_shards},{other}]"))

    chars = build_model("tiny", "ctc", vocab=timit_shards / "vocab.json")
    save_model(chars, tmp_path / "chars.pt")
    with pytest.raises(ValueError, match=r"model.init: the checkpoint's vocabulary \(\d+ symbols\) differs from the "
                                         r"data's \(44 symbols in the phone set of data.target=phones"):
        Trainer(_config(timit_shards, tmp_path / "r2", f"model.init={tmp_path / 'chars.pt'}"))


def test_phone_ctc_trains_from_a_pretraining_model_and_reports_per(timit_shards, tmp_path, capsys):
    pytest.importorskip("deepspeed")
    from ds_w2v.train.checkpoint_export import export
    from ds_w2v.train.trainer import Trainer

    torch.manual_seed(0)
    pretrained = build_model("tiny", "pretrain")
    save_model(pretrained, tmp_path / "pt.pt")
    run = tmp_path / "phones"
    # dev stands in for the test split: 6 utterances to score at the end instead of 72 (~20 s here)
    result = Trainer(_config(timit_shards, run, "max_updates=2", "eval_every=1", f"model.init={tmp_path / 'pt.pt'}",
                             "model.overrides.feature_grad_mult=0.0", "data.test_split=dev")).train()
    assert result["task"] == "phone_ctc" and result["updates"] == 2 and result["skipped_updates"] == 0
    index = json.loads((timit_shards / "dataset.json").read_text())["splits"]
    assert set(result["test"]) == {"loss", "per", "num_utterances", "audio_s"}
    assert result["test"]["num_utterances"] == index["dev"]["num_samples"] and 0 <= result["test"]["per"]
    assert json.loads((run / "results.json").read_text())["test"] == result["test"]
    # dev PER at every evaluation; the best checkpoint is the lowest
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    dev = {r["update"]: r["dev/per"] for r in rows if "dev/per" in r}
    assert sorted(dev) == [1, 2] and not any("dev/wer" in r or "dev/cer" in r for r in rows)
    assert result["best_dev"] == min(dev.values()) and dev[result["best_update"]] == result["best_dev"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["task"], saved["best_metric"], saved["data"]["target"]) == ("phone_ctc", "per", "phones")

    # the saved model: the phone vocabulary, the pretrained backbone (the conv encoder frozen here)
    model = load_model(export(run, tmp_path / "phones.pt"))
    assert model.task == "ctc" and model.vocab == PHONE_VOCAB
    conv = "wav2vec2.feature_extractor.conv_layers.1.conv.weight"
    assert torch.equal(model.state_dict()[conv], pretrained.state_dict()[conv])

    # ds-w2v evaluate scores the run's best checkpoint by PER: the run's own test figure
    assert cli(["evaluate", f"data.shards={timit_shards}", f"model.init={run}", "--split", "dev", "device=cpu",
                "data.batch_s=12", "--out", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["task"] == "phone_ctc"
    assert scores["splits"]["dev"] == pytest.approx(result["test"])

    # ds-w2v transcribe writes phones, space-separated. Two updates leave the head all blank, so
    # here a large random head makes the argmax follow the frames and the specials' logits are
    # pushed down: every frame's argmax is a phone, and different frames give different phones
    with torch.no_grad():
        torch.manual_seed(0)
        model.lm_head.weight.normal_(0.0, 10.0)
        model.lm_head.bias[: len(SPECIAL_TOKENS)] = -1e4
    save_model(model, tmp_path / "loud.pt")
    wav = next(p for p in (timit_shards.parent / "TIMIT").rglob("*") if p.suffix.lower() == ".wav")
    capsys.readouterr()
    assert cli(["transcribe", str(tmp_path / "loud.pt"), str(wav), "--device", "cpu"]) == 0
    path, text = capsys.readouterr().out.rstrip("\n").split("\t")
    phones = text.split(" ")
    assert path == str(wav) and len(phones) > 1 and set(phones) <= set(PHONES_39)  # never glued ("silt")


@pytest.mark.slow
def test_finetune_ctc_console_script_trains_phones(timit_shards, tmp_path):
    """``ds-w2v finetune-ctc --recipe finetune_ctc_tiny ... data.target=phones``, as a user types it."""
    pytest.importorskip("deepspeed")
    run = tmp_path / "run"
    env = {**{k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                                                "LOCAL_RANK")},
           "DS_ACCELERATOR": "cpu"}
    proc = subprocess.run([str(BIN / "ds-w2v"), "finetune-ctc", "--recipe", "finetune_ctc_tiny",
                           f"data.shards={timit_shards}", "data.target=phones", f"run_dir={run}", *FAST,
                           "max_updates=1", "eval_every=1", "eval_max_batches=1", "data.test_split=null"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "results.json").read_text())
    assert json.dumps(result, indent=1) in proc.stdout  # the command prints what it wrote
    assert result["task"] == "phone_ctc" and result["updates"] == 1 and result["best_update"] == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["dev/per"] for r in rows if "dev/per" in r] == [result["best_dev"]]
    assert json.loads((run / "model.json").read_text())["extra"]["vocab"] == PHONE_VOCAB.tokens
