"""Beam search with an n-gram LM in the commands: ``ds-w2v build-lm`` on a prepared corpus,
``ds-w2v evaluate decoding.decoder=beam`` (checked against decoding the same utterances here),
``--tune-lm`` on dev, and ``python -m ds_w2v transcribe --decoder beam`` in a subprocess.

The model is a tiny CTC model whose random head is scaled so that every frame's argmax is some
character: greedy writes character soup, the lexicon search can only write the LM's words."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

import ds_w2v
from ds_w2v.cli import main as cli
from ds_w2v.lm.arpa import read_vocabulary
from ds_w2v.text import edit_errors

pytest.importorskip("flashlight.lib.text.decoder")
ROOT = Path(__file__).resolve().parents[2]


def split_records(shards: Path, split: str) -> list[tuple[np.ndarray, str]]:
    """(int16 audio, transcript) of every utterance of a split, read from the tars directly."""
    import tarfile

    index = json.loads((shards / "dataset.json").read_text())
    out = []
    for name in index["splits"][split]["shards"]:
        with tarfile.open(shards / name) as tar:
            members = {m.name: m for m in tar}
            for key in sorted({n.split(".")[0] for n in members}):
                record = json.loads(tar.extractfile(members[key + ".json"]).read())
                audio = np.load(io.BytesIO(tar.extractfile(members[key + ".npy"]).read()))
                out.append((audio, record["text"]))
    return out


@pytest.fixture(scope="module")
def ctc_model(timit_shards, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    # the layer-norm encoder: a padded batch gives each row what it gives alone
    model = ds_w2v.build_model("tiny", "ctc", vocab=str(timit_shards / "vocab.json"), extractor_mode="layer",
                               conv_bias=True)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.2)  # logits ~ +-3: a different character wins frame to frame
    return ds_w2v.save_model(model, tmp_path_factory.mktemp("model") / "ctc.pt")


@pytest.fixture(scope="module")
def word_lm(timit_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "words.arpa"
    assert cli(["build-lm", str(timit_shards), "--order", "3", "--out", str(out)]) == 0
    return out


def test_build_lm_reads_the_train_transcripts_only(timit_shards, word_lm, tmp_path, capsys):
    train = {w for _, t in split_records(timit_shards, "train") for w in t.split()}
    test_only = {w for _, t in split_records(timit_shards, "test") for w in t.split()} - train
    assert set(read_vocabulary(word_lm)) == train | {"<s>", "</s>", "<unk>"}
    assert test_only  # the synthetic test sentences hold words train never says: none of them is in the LM
    # a text file: normalised like the targets; --unit char spells words with "|"
    text = tmp_path / "corpus.txt"
    text.write_text("Hello, World!\n\nhello there\n")
    assert cli(["build-lm", str(text), "--unit", "char", "--order", "2", "--out", str(tmp_path / "c.arpa")]) == 0
    assert set(read_vocabulary(tmp_path / "c.arpa")) == set("helowrdt|") | {"<s>", "</s>", "<unk>"}
    assert "from 2 sentences, 22 chars" in capsys.readouterr().out
    # bad input: one line naming the file
    for bad, says in [(tmp_path / "none.txt", "no such file"), (tmp_path, "not a prepared corpus")]:
        assert cli(["build-lm", str(bad), "--out", str(tmp_path / "x.arpa")]) == 1
        err = capsys.readouterr().err.strip()
        assert says in err and str(bad) in err and "\n" not in err


def evaluate(timit_shards, model, out, *extra) -> dict:
    assert cli(["evaluate", f"data.shards={timit_shards}", f"model.init={model}", "device=cpu", "data.batch_s=12",
                "--out", str(out), *extra]) == 0
    return json.loads(Path(out).read_text())


def test_evaluate_with_beam_decoding_scores_what_the_decoder_writes(timit_shards, ctc_model, word_lm, tmp_path):
    beam = ["decoding.decoder=beam", f"decoding.lm={word_lm}", "decoding.lm_weight=1.0", "decoding.word_score=0.5"]
    scores = evaluate(timit_shards, ctc_model, tmp_path / "beam.json", "--split", "dev", *beam)
    assert scores["decoding"] == {"decoder": "beam", "lm": str(word_lm), "lm_kind": "word", "beam": 50,
                                  "lm_weight": 1.0, "word_score": 0.5, "beam_threshold": 25.0}
    greedy = evaluate(timit_shards, ctc_model, tmp_path / "greedy.json", "--split", "dev")
    assert greedy["decoding"] == {"decoder": "greedy"}

    # the same utterances decoded here, one at a time
    from ds_w2v.lm.decoder import BeamDecoder, GreedyDecoder

    model = ds_w2v.load_model(ctc_model).eval()
    decoders = {"beam": BeamDecoder(model.vocab, word_lm, lm_weight=1.0, word_score=0.5),
                "greedy": GreedyDecoder(model.vocab)}
    refs, hyps = [], {"beam": [], "greedy": []}
    lexicon = set(read_vocabulary(word_lm))
    with torch.inference_mode():
        for audio, text in split_records(timit_shards, "dev"):
            out = model(torch.from_numpy(audio.astype(np.float32) / 32768.0)[None], torch.tensor([len(audio)]))
            refs.append(text)
            for name, decoder in decoders.items():
                hyps[name].append(decoder.decode(out.logits, out.frame_lengths)[0])
    assert all(set(h.split()) <= lexicon for h in hyps["beam"]) and any(hyps["beam"])
    assert not all(set(h.split()) <= lexicon for h in hyps["greedy"])  # character soup
    for name, result in (("beam", scores), ("greedy", greedy)):
        cer = edit_errors(refs, hyps[name], jiwer.process_characters)
        wer = edit_errors(refs, hyps[name], jiwer.process_words)
        assert result["splits"]["dev"]["num_utterances"] == len(refs)
        assert result["splits"]["dev"]["cer"] == pytest.approx(cer[0] / cer[1], abs=1e-9), name
        assert result["splits"]["dev"]["wer"] == pytest.approx(wer[0] / wer[1], abs=1e-9), name
    assert scores["splits"]["dev"]["cer"] != greedy["splits"]["dev"]["cer"]


def test_tune_lm_chooses_on_dev_and_scores_test_with_the_choice(timit_shards, ctc_model, word_lm, tmp_path, capsys):
    beam = ["decoding.decoder=beam", f"decoding.lm={word_lm}"]
    scores = evaluate(timit_shards, ctc_model, tmp_path / "tuned.json", "--split", "test", *beam, "--tune-lm",
                      "--lm-weights", "0,4", "--word-scores=-3,3")
    grid = scores["tuning"]["grid"]
    assert scores["tuning"]["split"] == "dev" and len(grid) == 4 and list(scores["splits"]) == ["test"]
    best = min(grid, key=lambda p: (p["wer"], p["cer"], abs(p["lm_weight"]), abs(p["word_score"])))
    chosen = scores["decoding"]
    assert (chosen["lm_weight"], chosen["word_score"]) == (best["lm_weight"], best["word_score"])
    assert len({(p["wer"], p["cer"]) for p in grid}) > 1  # the weights change what is written
    # the test score is that of the chosen weights, as a plain evaluation with them gives it
    fixed = evaluate(timit_shards, ctc_model, tmp_path / "fixed.json", "--split", "test", *beam,
                     f"decoding.lm_weight={best['lm_weight']}", f"decoding.word_score={best['word_score']}")
    assert fixed["splits"]["test"] == scores["splits"]["test"]

    # never on test: a dev split that is a test split is refused, before any model is read
    capsys.readouterr()
    assert cli(["evaluate", f"data.shards={timit_shards}", "model.init=nothing.pt", "data.dev_split=test", *beam,
                "--tune-lm"]) == 1
    err = capsys.readouterr().err.strip()
    assert "data.dev_split=test is also a test split" in err and "\n" not in err
    # and --tune-lm without a beam decoder says what to set
    assert cli(["evaluate", f"data.shards={timit_shards}", f"model.init={ctc_model}", "device=cpu", "--tune-lm"]) == 1
    assert "set decoding.decoder=beam" in capsys.readouterr().err


def test_transcribe_command_with_beam_in_a_subprocess(timit_shards, ctc_model, word_lm, tmp_path):
    wavs = []
    for i, (audio, _) in enumerate(split_records(timit_shards, "test")[:3]):
        wavs.append(tmp_path / f"u{i}.wav")
        sf.write(wavs[-1], audio, 16000, subtype="PCM_16")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def transcribe(*extra):
        proc = subprocess.run([sys.executable, "-m", "ds_w2v", "transcribe", str(ctc_model), *map(str, wavs),
                               "--device", "cpu", "--json", *extra], capture_output=True, text=True, env=env,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    beam = transcribe("--decoder", "beam", "--lm", str(word_lm), "--beam", "20", "--lm-weight", "1",
                      "--word-score", "3")
    greedy = transcribe()
    assert [r["path"] for r in beam] == [r["path"] for r in greedy] == list(map(str, wavs))  # stdout: results only
    lexicon = set(read_vocabulary(word_lm))
    assert all(set(r["text"].split()) <= lexicon for r in beam) and any(r["text"] for r in beam), beam
    assert [r["text"] for r in beam] != [r["text"] for r in greedy]
    # the trainer's decoding.* keys, typed as the trainer types them, give the same decoding as the flags
    keyed = transcribe("decoding.decoder=beam", f"decoding.lm={word_lm}", "decoding.beam=20", "decoding.lm_weight=1",
                       "decoding.word_score=3")
    assert keyed == beam


def test_bench_decode_tunes_on_dev_and_reports_each_decoder(timit_shards, ctc_model, word_lm, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "decode", str(ctc_model), "--data", str(timit_shards), "--lm", str(word_lm),
                "--max-utterances", "4", "--lm-weights", "0,2", "--word-scores", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    greedy, beam = result["rows"]
    assert greedy["decoder"] == "greedy" and beam["decoder"].startswith("flashlight beam 50, word LM")
    assert result["utterances"] == 4 and result["tune_split"] == "dev" and len(beam["tune_grid"]) == 2
    best = min(beam["tune_grid"], key=lambda p: (p["wer"], p["cer"], abs(p["lm_weight"])))
    assert beam["lm_weight"] == best["lm_weight"] and beam["utt_per_cpu_s"] > 0 and 0 <= beam["cer"]
    assert "greedy" in capsys.readouterr().out


def test_a_training_run_scores_dev_and_test_with_decoding_beam(timit_shards, ctc_model, word_lm, tmp_path):
    """``decoding.*`` in a fine-tuning run: its dev and test scores are the beam decoder's. With an
    lr of 1e-30 the one update leaves every fp32 weight as it was, so the run's test score must be
    ``ds-w2v evaluate``'s on the initial model with the same decoding."""
    pytest.importorskip("deepspeed")
    from ds_w2v.train.config import load_config
    from ds_w2v.train.trainer import Trainer

    beam = ["decoding.decoder=beam", f"decoding.lm={word_lm}", "decoding.lm_weight=1.0", "decoding.word_score=0.5"]
    run = tmp_path / "run"
    result = Trainer(load_config("finetune_ctc_tiny", [
        f"data.shards={timit_shards}", f"run_dir={run}", f"model.init={ctc_model}", "precision=fp32", "device=cpu",
        "data.batch_s=12", "global_batch_s=12", "max_updates=1", "eval_every=1", "optim.lr=1e-30", *beam])).train()
    scores = evaluate(timit_shards, ctc_model, tmp_path / "beam.json", "--split", "dev", "--split", "test", *beam)
    greedy = evaluate(timit_shards, ctc_model, tmp_path / "greedy.json", "--split", "test")
    for key in ("wer", "cer", "num_utterances"):
        assert result["test"][key] == scores["splits"]["test"][key], key
    assert result["test"]["cer"] != greedy["splits"]["test"]["cer"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["dev/cer"] for r in rows if "dev/cer" in r] == [scores["splits"]["dev"]["cer"]]
