"""The demo's report: the study's two tables (ASR: WER/CER, loss, time; emotion: accuracy/F1,
loss, time) per model size, the pretraining ablation, the linear phone probe of the pretrained
and the random-init model, plots, written to ``RESULTS.md``.

Every figure is read from the runs' ``results.json`` (test metrics, times), ``metrics.jsonl``
(curves) and the probes' JSON (``ds-w2v probe --out``); nothing is typed in by hand.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STUDY = """The study's own figures (fine-tunes of a hub checkpoint pretrained and fine-tuned on
LibriSpeech 960 h, real TIMIT/RAVDESS, one T4) are not comparable
with a model pretrained from scratch on an hour of synthetic speech: the tables above
measure what *this* pipeline does at demo scale."""


def _ablation_verdict(abl: dict[str, dict]) -> list[str]:
    """The ablation's figures, without a sign they cannot support: one seed at one learning rate,
    where CTC's exit from its all-blank plateau alone moves a row by tens of points between seeds
    (the study measured up to 27) and between CPUs (bf16 vs fp32: 74 % vs 99 % test CER)."""
    out = []
    for budget in ("100 %", "10 %"):
        pre = abl.get(f"pretrained, {budget}", {}).get("test", {}).get("cer")
        rnd = abl.get(f"random init, {budget}", {}).get("test", {}).get("cer")
        if pre is None or rnd is None:
            continue
        out.append(f"- {budget} of the labels: test CER {_pct(pre)} pretrained vs {_pct(rnd)} from random init "
                   f"({100 * (pre - rnd):+.1f} points). One seed at one learning rate: no sign is claimed from it.")
    return out


def _study_summary(results: Path) -> list[str]:
    """The study's recorded goals (``results/study.json``, made by ``bash launch/study.sh``), quoted
    beside the demo's one-seed rows as what answers "does pretraining help"; [] when absent."""
    path = Path(results) / "study.json"
    try:
        goals = json.loads(path.read_text())["goals"]
    except (OSError, ValueError, KeyError):
        return []
    out = ["The fair comparison, recorded by `bash launch/study.sh` in `results/STUDY.md` (each arm's learning",
           "rate chosen on dev, 2-3 seeds, 2,000 pretraining updates, test read once):"]
    for g in goals:
        verdict = {True: "met", False: "missed"}.get(g.get("passed"), "not measured")
        out.append(f"- {g['name']}: {g['measured']} (goal: {g['target']}: {verdict}).")
    return out


def _scale_note(row: dict) -> list[str]:
    """How much audio pretraining saw here, against the paper's BASE (from the run's config)."""
    cfg = _run_config(row["runs"]["pretrain"])
    seen_h = cfg.get("max_updates", 0) * cfg.get("global_batch_s", 0) / 3600
    base_h = 400_000 * 5600 / 3600  # BASE recipe: 400k updates x 5,600 audio-s
    scale = f", {base_h / seen_h:,.0f} x this run's" if seen_h else ""
    return [f"Pretraining here saw {seen_h:.1f} h of audio ({cfg.get('max_updates')} updates). The wav2vec 2.0",
            f"paper's BASE saw {base_h:,.0f} h (400k updates x 5,600 audio-s on LibriSpeech 960 h, 64 V100 x",
            f"1.6 days{scale}); its gains over supervised training are measured at that scale, so a demo-scale",
            "comparison tests the pipeline, not the method (BENCHMARKS.md projects the GPU time it takes)."]


def _plateau_note(rows: dict, ablation: dict) -> list[str]:
    """Say so when every CTC row still writes only blanks (test CER >= 99 %): at demo budgets that is
    CTC's all-blank plateau, not a broken model, and no comparison can be read from it."""
    cers = [r["ctc"].get("test", {}).get("cer") for r in rows.values()]
    cers += [res.get("test", {}).get("cer") for abl in ablation.values() for res in abl.values()]
    cers = [c for c in cers if c is not None]
    if not cers or min(cers) < 0.99:
        return []
    return ["", "Every CTC row is at 100 % CER: at this budget CTC has not left its all-blank plateau (the model",
            "writes only blanks). From tiny it leaves it after ~400-500 updates (`experiments/demo.py`, `CPU_DEMO`);",
            "the study's longer fine-tunes do (`results/STUDY.md`). The demo runs the pipeline end to end; the",
            "study measures what pretraining does."]


def _decoding_section(rows: dict) -> list[str]:
    """Greedy vs beam search with the word n-gram LM on the same checkpoint (the CTC run's best):
    greedy from the run's results.json, the LM row from ``ds-w2v evaluate --tune-lm --out``."""
    have = {size: r for size, r in rows.items() if r.get("ctc_lm")}
    if not have:
        return []
    out = ["", "### Decoding the same model: greedy vs beam search with a word n-gram LM, test split", ""]
    skipped = {size: r for size, r in have.items() if r["ctc_lm"].get("skipped")}
    out += [f"- {size}: {r['ctc_lm']['skipped']}." for size, r in skipped.items()]
    have = {size: r for size, r in have.items() if size not in skipped}
    if not have:
        return out
    out += ["| model | decoder | WER | CER | LM weight, word score (chosen on dev) | dev WER |", "|---|---|---|---|---|---|"]
    for size, r in have.items():
        g, lm = r["ctc"].get("test", {}), r["ctc_lm"]
        t, d, dec = lm["splits"].get("test", {}), lm["splits"].get("dev", {}), lm.get("decoding", {})
        # greedy's dev WER at the chosen checkpoint, from the run's own evaluation log
        best = r["ctc"].get("best_update")
        g_dev = next((m["dev/wer"] for m in _read_metrics(r["runs"]["ctc"])
                      if m.get("update") == best and "dev/wer" in m), None)
        out.append(f"| {size} | greedy | {_pct(g.get('wer'))} | {_pct(g.get('cer'))} | - | {_pct(g_dev)} |")
        out.append(f"| {size} | beam {dec.get('beam')} + {Path(str(dec.get('lm'))).name} | {_pct(t.get('wer'))} | "
                   f"{_pct(t.get('cer'))} | {dec.get('lm_weight'):g}, {dec.get('word_score'):g} | {_pct(d.get('wer'))} |")
    out += ["", "The LM is a word 4-gram (modified Kneser-Ney, `ds-w2v build-lm`) of the train transcripts; its",
            "weights are chosen on dev over `ds-w2v evaluate --tune-lm`'s grid, then test is decoded once. The",
            "synthetic corpus's dev shares many sentences with train (TIMIT's design), which flatters the LM on",
            "dev; test does not. " + "; ".join(f"{size}: `{r['ctc_lm']['command']}`" for size, r in have.items())]
    return out


STUDY_POINTER = ["One seed and one learning rate: a demo of the pipeline, not a measurement. The fair comparison",
                 "of pretrained and random initialisation (learning rate chosen on dev, 2 seeds) is the study:",
                 "`bash launch/study.sh` writes it to `results/STUDY.md`."]


def _probe_linear(path: str | Path) -> tuple[dict, dict]:
    """The linear probe's figures and the split sizes from a ``ds-w2v probe --out`` file (the
    first corpus it probed with the linear protocol)."""
    results = json.loads(Path(path).read_text())
    for data in results["datasets"].values():
        if "linear" in data:
            return data["linear"], data["splits"]
    raise ValueError(f"{path}: no linear probe in it")


def _random_init_note(probes: dict[str, dict], row: dict) -> list[str]:
    """What the random-init upstream is, read from its probe file and the pretraining run's config."""
    path = probes.get("random init", {}).get("results")
    if path is None:
        return []
    probe = json.loads(Path(path).read_text())
    cfg = _run_config(row["runs"]["pretrain"])
    same = (probe["upstream"] == f"random:{cfg.get('model', {}).get('preset')}" and probe.get("seed") == cfg.get("seed"))
    return [f"Random init: `{probe['upstream']}`, fresh weights drawn with seed {probe.get('seed')}"
            + (", the pretraining run's seed: the very weights pretraining started from." if same else ".")]


def _probe_section(row: dict) -> list[str]:
    """Pretrained vs random init: every layer's frame accuracy, the best layer, the majority class."""
    probes = row["probes"]
    read = {label: _probe_linear(p["results"]) for label, p in probes.items()}
    lin0, splits0 = next(iter(read.values()))
    layers = list(lin0["layers"])
    train, test = splits0["train"]["utterances"], splits0["test"]["utterances"]
    out = ["### What the frozen layers know: linear phone probe (CPC), read-speech corpus", "",
           "One linear classifier per layer of the frozen model (conv features, transformer input, each block)",
           f"from its 20 ms frames to the {lin0['num_classes']} folded TIMIT phones, trained on {train} train utterances",
           f"({lin0['num_train_frames']:,} frames), frame accuracy on {test} test utterances",
           f"({lin0['num_eval_frames']:,} frames; speakers never seen in training).", *_random_init_note(probes, row), "",
           "| upstream | " + " | ".join(layers) + " | best layer |", "|---|" + "---|" * (len(layers) + 1)]
    for label, (lin, _) in read.items():
        cells = " | ".join(_pct(lin["layers"].get(n)) for n in layers)
        out.append(f"| {label} | {cells} | {lin['best_layer']}: {_pct(lin['best_acc'])} |")
    out.append(f"| majority class ('{lin0['majority_phone']}' for every frame) | " + "- | " * len(layers)
               + f"{_pct(lin0['majority_acc'])} |")
    pre, rnd = read.get("pretrained", (None,))[0], read.get("random init", (None,))[0]
    if pre is not None and rnd is not None:
        gain = pre["best_acc"] - rnd["best_acc"]
        verdict = ("raised it" if gain > 0.01 else "lowered it" if gain < -0.01
                   else "made no difference to it (within 1 point)")
        out += ["", (f"- The best layer's frame accuracy: pretraining {verdict}: {_pct(pre['best_acc'])} "
                     f"({pre['best_layer']}) pretrained vs {_pct(rnd['best_acc'])} ({rnd['best_layer']}) at random "
                     f"init, {100 * gain:+.2f} points; always guessing the majority phone scores "
                     f"{_pct(lin0['majority_acc'])}.")]
    return out + [""]


def _run_config(run_dir: str) -> dict:
    import yaml

    path = Path(run_dir) / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    last: dict[tuple, dict] = {}
    for r in rows:  # a resumed run may log an update twice: keep the last
        last[(r["update"], tuple(sorted(k for k in r if "/" in k)))] = r
    return sorted(last.values(), key=lambda r: r["update"])


def _curve(rows, key):
    pts = [(r["update"], r[key]) for r in rows if key in r]
    return [u for u, _ in pts], [v for _, v in pts]


def _plots(rows: dict, results: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    panels = {
        "loss_curves.png": ((("pretrain", "train/loss", "pretraining loss (per masked frame)"),
                             ("ctc", "train/loss", "CTC loss (per utterance)"),
                             ("cls", "train/loss", "classification loss (per utterance)")), None),
        "dev_metrics.png": ((("pretrain", "dev/loss", "dev pretraining loss"),
                             ("ctc", "dev/wer", "dev WER"),
                             ("cls", "dev/acc", "dev accuracy")), "o"),
    }
    for name, (specs, marker) in panels.items():
        fig, axes = plt.subplots(1, len(specs), figsize=(5 * len(specs), 4))
        for ax, (kind, key, title) in zip(axes, specs):
            for size, row in rows.items():
                x, y = _curve(_read_metrics(row["runs"][kind]), key)
                ax.plot(x, y, marker=marker, label=size)
            ax.set_title(title)
            ax.set_xlabel("update")
            ax.legend()
        fig.tight_layout()
        fig.savefig(results / name, dpi=100)
        plt.close(fig)
        files.append(name)

    for size, row in rows.items():
        conf = row["cls"].get("test_confusion")
        if not conf:
            continue
        labels, m = conf["labels"], conf["matrix"]
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i, r in enumerate(m):
            for j, v in enumerate(r):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"emotion, test split, {size}")
        fig.tight_layout()
        name = f"confusion_{size}.png"
        fig.savefig(results / name, dpi=100)
        plt.close(fig)
        files.append(name)
    return files


def _settings(run_dir: str | Path) -> str:
    c = _run_config(str(run_dir))
    if not c:
        return ""
    return (f"preset {c['model']['preset'] if not c['model'].get('init') else '(from init)'}, "
            f"{c['max_updates']} updates x {c['global_batch_s']:g} audio-s, lr {c['optim']['lr']:g} ({c['schedule']['kind']}), "
            f"precision {c['precision']}, {Path(c['deepspeed_config']).name}")


def _machine() -> str:
    """This machine as ``ds-w2v env`` names it: the figures' times and precision depend on it."""
    from ds_w2v.hardware import Machine

    return Machine.read().line()


def write_report(rows: dict, ablation: dict, results: Path, total_s: float) -> str:
    results = Path(results)
    lines = ["# Results", "",
             "Made by `bash launch/demo.sh` (`python -m experiments.demo`); every figure below is read from the",
             "runs' `results.json` and `metrics.jsonl` and the probes' JSON (`ds-w2v probe --out`). Test splits",
             "hold speakers (read speech) and actors (emotion) never seen in training; checkpoints are chosen",
             "on dev only.", "", f"Machine: {_machine()}.", ""]
    lines += ["## Speech recognition (CTC), read-speech corpus, test split", "",
              "| model | params (CTC trainable) | WER | CER | loss | pretraining time | fine-tuning time | total time |",
              "|---|---|---|---|---|---|---|---|"]
    for size, r in rows.items():
        t = r["ctc"].get("test", {})
        lines.append(f"| {size} | {r['params_m']:.1f}M | {_pct(t.get('wer'))} | {_pct(t.get('cer'))} | "
                     f"{t.get('loss', float('nan')):.3f} | {_hms(r['pretrain_s'])} | {_hms(r['ctc_s'])} | "
                     f"{_hms(r['pretrain_s'] + r['ctc_s'])} |")
    lines += _plateau_note(rows, ablation)
    lines += _decoding_section(rows)
    lines += ["", "## Emotion recognition (classification), emotion corpus, test split", "",
              "| model | accuracy | macro-F1 | loss | pretraining time | fine-tuning time | total time |",
              "|---|---|---|---|---|---|---|"]
    for size, r in rows.items():
        t = r["cls"].get("test", {})
        lines.append(f"| {size} | {_pct(t.get('acc'))} | {_pct(t.get('f1'))} | {t.get('loss', float('nan')):.3f} | "
                     f"{_hms(r['pretrain_s'])} | {_hms(r['cls_s'])} | {_hms(r['pretrain_s'] + r['cls_s'])} |")
    lines += ["", "Loss: CTC loss per utterance (nats), cross-entropy per utterance. Times are wall-clock,",
              "process start-up and evaluations included; on a CPU the demo runs two trainings side by side",
              "(`--jobs`), so each run's time is with the cores shared. Chance accuracy for 8 emotions is 12.5 %.", ""]
    for size, r in rows.items():
        abl = ablation.get(size)
        if not r.get("probes") and not abl:
            continue
        lines += [f"## Does pretraining help? {size}", ""]
        if r.get("probes"):
            lines += _probe_section(r)
        if abl:
            ctc_cfg = _run_config(r["runs"]["ctc"])
            best = ctc_cfg.get("best_metric") or "wer"  # the metric that chose each row's checkpoint
            lines += ["### CTC fine-tuning from each initialisation, test split", "",
                      f"| initialisation, labelled data | WER | CER | loss | best dev {best.upper()} |",
                      "|---|---|---|---|---|"]
            for name, res in abl.items():
                t = res.get("test", {})
                lines.append(f"| {name} | {_pct(t.get('wer'))} | {_pct(t.get('cer'))} | "
                             f"{t.get('loss', float('nan')):.3f} | {_pct(res.get('best_dev'))} |")
            ten = any(name.endswith("10 %") for name in abl)
            lines += ["", "Same recipe and number of updates in every row; from random initialisation the conv feature",
                      "encoder always trains (the GPU recipes freeze it when it is pretrained; the tiny recipe trains",
                      "it in every row)." + (" \"10 %\" keeps a seeded tenth of the training utterances (dev and test "
                                             "whole)." if ten else ""), ""] + _ablation_verdict(abl) + [""]
        else:
            lines += ["The CTC fine-tune from random initialisation: `python -m experiments.demo --ablation on` (`full`:",
                      "also with 10 % of the labels; on by default for tiny).", ""]
        lines += STUDY_POINTER + [""] + _study_summary(results) + [""] + _scale_note(r) + [""]
    lines += ["## Settings", ""]
    for size, r in rows.items():
        for kind in ("pretrain", "ctc", "cls"):
            lines.append(f"- {size} {kind}: {_settings(r['runs'][kind])} (run dir `{r['runs'][kind]}`, TensorBoard in "
                         f"`{r['runs'][kind]}/tensorboard`)")
        for label, probe in r.get("probes", {}).items():
            lines.append(f"- {size} probe, {label}: `{probe['command']}` ({_hms(probe.get('wall_s'))})")
    plots = _plots(rows, results)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", f"Total demo time: {_hms(total_s)}.", "", STUDY, ""]
    text = "\n".join(lines)
    (results / "RESULTS.md").write_text(text)
    (results / "results.json").write_text(json.dumps({"sizes": rows, "ablation": ablation}, indent=1, default=str))
    return text
