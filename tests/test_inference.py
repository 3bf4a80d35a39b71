"""``ds_w2v.inference`` and ``ds-w2v transcribe`` / ``ds-w2v classify`` on tiny models.

The references are computed here independently of the library: soundfile decode -> channel mean
-> soxr (HQ) to 16 kHz -> int16 -> the model called directly on one utterance.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

import ds_w2v
from ds_w2v import cli
from ds_w2v.inference import classify, plan_batches, transcribe

LABELS = ["neutral", "happy", "sad", "angry"]

# name -> (seconds, rate, channels, format, subtype). Lengths within 15 % of each other, so
# that with the default batch_s they all share one padded batch (checked in test_plan_batches).
AUDIO = {
    "a_8k.wav": (1.12, 8000, 1, "WAV", "PCM_16"),
    "b_44k_stereo.wav": (1.05, 44100, 2, "WAV", "PCM_16"),
    "c_float.wav": (1.0, 16000, 1, "WAV", "FLOAT"),
    "d_22k.flac": (1.1, 22050, 1, "FLAC", "PCM_16"),
    "e_48k.ogg": (1.08, 48000, 1, "OGG", "VORBIS"),
    "f_ulaw.wav": (1.03, 8000, 1, "WAV", "ULAW"),
    "g.sph": (1.15, 16000, 1, "NIST", "PCM_16"),
}


def signal(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """A chirp plus noise, float32; a stereo file has a different right channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(150 + 2500 * t / seconds) / rate) + 0.05 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x, 0.5 * x[::-1]], axis=1) if channels == 2 else x


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio")
    out = {}
    for seed, (name, (seconds, rate, channels, fmt, subtype)) in enumerate(AUDIO.items()):
        out[name] = root / name
        sf.write(out[name], signal(seconds, rate, channels, seed), rate, format=fmt, subtype=subtype)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Model files: the default group-norm CTC encoder, and the layer-norm variant (CTC and
    classification) whose outputs do not depend on padding."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    layer = {"extractor_mode": "layer", "conv_bias": True}
    return {
        "ctc_group": ds_w2v.save_model(ds_w2v.build_model("tiny", "ctc"), root / "ctc_group.pt"),
        "ctc": ds_w2v.save_model(ds_w2v.build_model("tiny", "ctc", **layer), root / "ctc.pt"),
        "cls": ds_w2v.save_model(ds_w2v.build_model("tiny", "cls", labels=LABELS, **layer), root / "cls.pt"),
        "pretrain": ds_w2v.save_model(ds_w2v.build_model("tiny", "pretrain"), root / "pretrain.pt"),
    }


def reference_audio(path: Path) -> np.ndarray:
    """float32 16 kHz mono, quantised to int16 steps as a shard sample would be."""
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != 16000:
        x = soxr.resample(x, rate, 16000, quality="HQ")
    return (np.clip(np.rint(x * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


@torch.inference_mode()
def direct(model, audio: np.ndarray):
    return model.eval()(torch.from_numpy(audio)[None])


def test_plan_batches():
    lengths = [100, 300, 290, 50, 280, 1000, 45]
    # longest first; 1000 > budget alone; 280 fits 3 x 300 <= 900; 50 vs 100 pads 50 % -> cut
    assert plan_batches(lengths, batch_samples=900, max_padding=0.15) == [[5], [1, 2, 4], [0], [3, 6]]
    assert plan_batches(lengths, batch_samples=600, max_padding=0.15) == [[5], [1, 2], [4], [0], [3, 6]]
    assert plan_batches(lengths, batch_samples=10_000, max_padding=1.0) == [[5, 1, 2, 4, 0, 3, 6]]
    assert plan_batches([7, 7, 7], batch_samples=1) == [[0], [1], [2]]  # ties keep input order
    with pytest.raises(ValueError):
        plan_batches(lengths, batch_samples=0)
    # the test files all share one padded batch at the default budget
    samples = [round(seconds * 16000) for seconds, *_ in AUDIO.values()]
    assert len(plan_batches(samples, batch_samples=60 * 16000)) == 1


def test_batched_equals_one_by_one(files, models):
    """Layer-norm encoder: padding + lengths change nothing, and results keep input order."""
    paths = [files[n] for n in ("c_float.wav", "g.sph", "a_8k.wav", "e_48k.ogg", "b_44k_stereo.wav", "f_ulaw.wav")]
    batched = transcribe(models["ctc"], paths, batch_s=60, device="cpu")
    alone = transcribe(models["ctc"], paths, batch_s=1e-3, device="cpu")
    assert [r.path for r in batched] == [str(p) for p in paths]
    assert all(r.ok for r in batched)
    assert [r.text for r in batched] == [r.text for r in alone]
    assert len({r.text for r in batched}) == len(paths) and all(batched[i].text for i in range(len(paths)))

    batched = classify(models["cls"], paths, top_k=4, batch_s=60, device="cpu")
    alone = classify(models["cls"], paths, top_k=4, batch_s=1e-3, device="cpu")
    for b, a in zip(batched, alone):
        assert b.path == a.path and [lab for lab, _ in b.top_k] == [lab for lab, _ in a.top_k]
        np.testing.assert_allclose([p for _, p in b.top_k], [p for _, p in a.top_k], atol=1e-5)


def test_matches_model_on_resampled_audio(files, models):
    """Every format and rate gives what the model gives on the soxr-resampled 16 kHz mono signal
    (one file a batch, so this holds for the group-norm encoder too)."""
    model = ds_w2v.load_model(models["ctc_group"]).train()
    paths = list(files.values())
    results = transcribe(model, paths, batch_s=1e-3, device="cpu")
    assert model.training  # run in eval mode, then given back as it came
    for path, r in zip(paths, results):
        audio = reference_audio(path)
        out = direct(model, audio)
        assert r.text == model.decode(out.logits, out.frame_lengths)[0], path.name
        assert r.duration_s == pytest.approx(AUDIO[path.name][0], abs=1e-3)

    # the 8 kHz file read as if it were 16 kHz would give another text: the resampling matters
    raw, _ = sf.read(files["a_8k.wav"], dtype="float32")
    out = direct(model, raw)
    assert results[0].text != model.decode(out.logits, out.frame_lengths)[0]

    cls_model = ds_w2v.load_model(models["cls"])
    probs = torch.softmax(direct(cls_model, reference_audio(files["b_44k_stereo.wav"])).logits[0], -1)
    [r] = classify(cls_model, [files["b_44k_stereo.wav"]], top_k=len(LABELS), device="cpu")
    np.testing.assert_allclose([p for _, p in r.top_k], probs.sort(descending=True).values.numpy(), atol=1e-5)
    assert r.label == LABELS[int(probs.argmax())]


def test_transcribe_cli_reports_broken_files_and_goes_on(files, models, tmp_path, capsys):
    not_audio = tmp_path / "not_audio.wav"
    not_audio.write_text("hello")
    too_short = tmp_path / "too_short.wav"
    sf.write(too_short, np.zeros(200, np.float32), 16000)  # 12.5 ms < the 25 ms receptive field
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(files["c_float.wav"].read_bytes()[:3000])
    long = tmp_path / "long.wav"
    sf.write(long, signal(61.0, 16000, 1, seed=9), 16000)  # > 60 s: processed, no chunking needed
    missing = tmp_path / "missing.flac"

    good = [files["d_22k.flac"], long, files["a_8k.wav"]]
    argv = ["transcribe", str(models["ctc"]), str(good[0]), str(not_audio), str(long), str(too_short),
            str(truncated), str(missing), str(good[2]), "--json", "--device", "cpu"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [d["path"] for d in lines] == [str(p) for p in good]
    expected = transcribe(models["ctc"], good, batch_s=1e-3, device="cpu")
    assert [d["text"] for d in lines] == [r.text for r in expected]
    assert lines[1]["duration_s"] == pytest.approx(61.0)
    errors = captured.err.splitlines()
    reasons = {"unreadable": not_audio, "too_short": too_short, "truncated": truncated, "missing_audio": missing}
    assert len(errors) == len(reasons)
    for (reason, path), line in zip(reasons.items(), errors):
        assert line.startswith(f"{path}: {reason}: "), line

    # a limit refuses from the header; the other files still give their text, exit code 1
    assert cli.main(["transcribe", str(models["ctc"]), str(long), str(good[0]), "--max-duration-s", "30",
                     "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{good[0]}\t{expected[0].text}\n"
    assert captured.err.startswith(f"{long}: too_long: ")


def test_classify_cli(files, models, capsys):
    paths = [str(files[n]) for n in ("e_48k.ogg", "a_8k.wav", "g.sph")]
    assert cli.main(["classify", str(models["cls"]), *paths, "--device", "cpu"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == paths
    assert all(r[1] in LABELS and 0 < float(r[2]) <= 1 for r in rows)

    assert cli.main(["classify", str(models["cls"]), *paths, "--json", "--top-k", "9", "--device", "cpu"]) == 0
    for path, line in zip(paths, capsys.readouterr().out.splitlines()):
        d = json.loads(line)
        probs = [p for _, p in d["top_k"]]
        assert d["path"] == path and len(d["top_k"]) == len(LABELS)  # top-k capped at the labels
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
        assert [d["label"], d["label_p"]] == d["top_k"][0]


@pytest.mark.parametrize("command, model, says", [
    ("classify", "ctc", "is a speech recognition (CTC) model, not a classification model; use `ds-w2v transcribe` for it"),
    ("transcribe", "cls", "is a classification model, not a speech recognition (CTC) model; use `ds-w2v classify` for it"),
    ("transcribe", "pretrain", "is a pretraining (no task head) model, not a speech recognition (CTC) model"),
])
def test_wrong_task_is_one_clear_error(files, models, capsys, command, model, says):
    assert cli.main([command, str(models[model]), str(files["a_8k.wav"])]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"ds-w2v {command}: error: {models[model]} {says}\n"
    with pytest.raises(ValueError, match="not a"):
        (classify if command == "classify" else transcribe)(models[model], [files["a_8k.wav"]])


def test_bad_options(files, models):
    with pytest.raises(ValueError, match="batch_s"):
        transcribe(models["ctc"], [files["a_8k.wav"]], batch_s=0)
    with pytest.raises(ValueError, match="top_k"):
        classify(models["cls"], [files["a_8k.wav"]], top_k=0)
    with pytest.raises(ValueError, match="device"):
        transcribe(models["ctc"], [files["a_8k.wav"]], device="tpu")


def test_out_of_memory_retries_one_file_at_a_time(files, models, monkeypatch):
    """A batch that does not fit is retried file by file; only a file that alone does not fit
    fails (simulated: anything over 1.1 s of audio 'does not fit')."""
    from ds_w2v import inference

    forward = inference._forward

    def small_memory(model, pcms, head, device):
        if sum(len(p) for p in pcms) > 1.1 * 16000:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(model, pcms, head, device)

    monkeypatch.setattr(inference, "_forward", small_memory)
    paths = [files["c_float.wav"], files["g.sph"], files["b_44k_stereo.wav"]]  # 1.0 s, 1.15 s, 1.05 s
    results = transcribe(models["ctc"], paths, batch_s=60, device="cpu")
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error.startswith("out_of_memory: 1.1 s of audio do not fit on cpu")
    monkeypatch.undo()
    assert [r.text for r in results if r.ok] == [r.text for r in transcribe(models["ctc"], paths[::2], batch_s=1e-3, device="cpu")]


def test_transcribe_takes_a_run_directory(tmp_path, monkeypatch):
    """``load_task_model`` reads a run directory as model.init does (best, else latest): a newcomer's
    `ds-w2v transcribe runs/finetune_ctc_tiny a.wav` needs no export first."""
    import ds_w2v.train.checkpoint_export as ckpt_export
    import ds_w2v.train.checkpoint_tags as ckpt_tags
    from ds_w2v import build_model
    from ds_w2v.inference import load_task_model

    run = tmp_path / "run"
    model = build_model("tiny", task="ctc", vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5})
    monkeypatch.setattr(ckpt_tags, "is_run_dir", lambda p: p == run)
    monkeypatch.setattr(ckpt_export, "model_from_run", lambda p: model if p == run else None)
    assert load_task_model(str(run), "ctc") is model
