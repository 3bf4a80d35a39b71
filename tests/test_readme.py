"""README.md's code, run as a reader would run it.

- ``test_readme_commands_parse`` (quick): every ``ds-w2v`` command of README's ```bash blocks,
  also behind ``deepspeed ... --module ds_w2v.train`` / ``torchrun -m`` / ``python -m ds_w2v``,
  names a known sub-command whose parser accepts its options, every ``key=value`` override is a
  config key, and the training commands' configurations load (recipe + overrides, validated).
- ``test_python_blocks_run`` (quick): every ```python block of README.md and docs/python_api.md is
  executed as printed, on the CPU, in a scratch directory.
- ``test_own_audio_quick_start`` (slow): the newcomer's path, *Quick start: your own audio*, run
  through the console script (``.venv/bin/ds-w2v``) in a scratch directory holding what README
  says the reader has: ``my_audio/``, a folder of .wav files, and ``my_labelled/`` with
  ``train.csv`` and ``dev.csv`` (``path,text``), both made from the synthesised TIMIT-layout corpus
  of ``tests/conftest.py``'s ``small_timit_shards`` (its SPHERE .WAV files written as RIFF WAV, its
  .TXT transcripts as the CSV's text). Each command of the section's ```bash blocks is taken as
  printed (continuation lines joined, comments dropped, globs expanded in the scratch directory)
  and given, at its end, only what makes it small and keeps it on the CPU:

      ds-w2v prepare ...                      + --workers 2 --no-progress
      ds-w2v pretrain | finetune-ctc ...      + max_updates=2 data.batch_s=8 global_batch_s=16 log_every=1
                                                eval_every=1000 save_every=1000 device=cpu
      ds-w2v transcribe | classify ...        + --device cpu

  So README's commands must stay runnable with these appended: no trailing comment after which an
  override would be lost (comments are stripped first anyway), nothing but ``key=value`` overrides
  where the overrides go. The test checks that the section still walks the whole path (a folder of
  audio -> prepare --format dir -> pretrain -> prepare --format csv -> finetune-ctc from the
  pretraining run -> transcribe), that the CTC fine-tune of the pretrained model uses the lr the
  study measured (<= 1e-3, not random initialisation's 2e-3), that the runs land in the
  directories README names (``runs/<recipe>``), that a training command's stdout is its result
  JSON alone, and that ``transcribe`` prints a line for every file.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
OWN_AUDIO = "Quick start: your own audio"
TRAIN_OVERRIDES = ("max_updates=2", "data.batch_s=8", "global_batch_s=16", "log_every=1", "eval_every=1000",
                   "save_every=1000", "device=cpu")
APPENDED = {
    "prepare": ("--workers", "2", "--no-progress"),
    "pretrain": TRAIN_OVERRIDES,
    "finetune-ctc": TRAIN_OVERRIDES,
    "finetune-cls": TRAIN_OVERRIDES,
    "transcribe": ("--device", "cpu"),
    "classify": ("--device", "cpu"),
}
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "CUDA_VISIBLE_DEVICES")


# -- reading README ------------------------------------------------------------------------------
def code_blocks(path: Path, lang: str) -> list[tuple[str, str]]:
    """``(section heading, code)`` of every fenced block of ``lang``, in page order."""
    blocks, heading, inside, code = [], "", None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if inside is None:
            m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
            if m:
                heading = m.group(1)
            m = re.match(r"^```(\w*)\s*$", line)
            if m:
                inside, code = m.group(1), []
        elif line.startswith("```"):
            if inside == lang:
                blocks.append((heading, "\n".join(code) + "\n"))
            inside = None
        else:
            code.append(line)
    return blocks


def commands(code: str) -> list[list[str]]:
    """The shell commands of a block as argument lists: continuation lines joined, comments and
    empty lines dropped (no globbing, no variables: README's commands use neither but ``*.wav``)."""
    out = []
    for line in re.sub(r"\\\n", " ", code).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def ds_w2v_command(words: list[str]) -> tuple[str, list[str]] | None:
    """``(sub-command, its arguments)`` of a ds_w2v command line, whatever door it takes; None for
    other commands (``bash launch/demo.sh``, ``source ...``)."""
    if words[0] == "ds-w2v":
        return (words[1], words[2:]) if len(words) > 1 else ("", [])
    for flag in ("--module", "-m"):
        if words[0] in ("deepspeed", "torchrun", "python", "python3") and flag in words:
            i = words.index(flag)
            if i + 2 <= len(words) - 1 and words[i + 1] in ("ds_w2v", "ds_w2v.train"):
                return words[i + 2], words[i + 3:]
    return None


def readme_ds_w2v_commands(section: str | None = None) -> list[tuple[str, list[str]]]:
    found = []
    for heading, code in code_blocks(README, "bash"):
        if section is not None and heading != section:
            continue
        for words in commands(code):
            command = ds_w2v_command(words)
            if command is not None:
                found.append(command)
    return found


# -- quick: every command parses, every key exists -----------------------------------------------
def test_readme_has_the_sections_the_tests_read():
    headings = [h for h, _ in code_blocks(README, "bash")]
    assert OWN_AUDIO in headings, f"README lost its section {OWN_AUDIO!r} (headings with bash blocks: {headings})"
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_readme_commands_parse():
    from ds_w2v.cli import COMMANDS, load_command, task_commands
    from ds_w2v.models.wav2vec2 import Wav2Vec2Config
    from ds_w2v.train.config import TrainConfig, load_config
    from ds_w2v.train.config_keys import config_keys

    known = {k.key for k in config_keys(TrainConfig)}
    model_keys = {f"model.overrides.{k.key}" for k in config_keys(Wav2Vec2Config)}
    found = readme_ds_w2v_commands()
    assert len(found) >= 10
    for name, args in found:
        line = f"ds-w2v {name} {shlex.join(args)}"
        if args == ["--version"] or name in ("--version", "-V"):
            continue
        assert name in COMMANDS or name in task_commands(), f"README: {line}: no such command"
        command = load_command(name)
        parser = command.build_parser(f"ds-w2v {name}")
        try:
            parsed = parser.parse_intermixed_args(args)
        except SystemExit:
            pytest.fail(f"README: {line}: the parser refuses it")
        for item in getattr(parsed, "overrides", None) or []:
            key = item.partition("=")[0]
            assert key in known or key in model_keys, f"README: {line}: {key} is not a config key"
        task = getattr(command, "task", None)
        if task is not None:  # a training command: its configuration loads and validates
            load_config(parsed.recipe, parsed.overrides, task=task)


def test_finetuning_a_pretrained_model_uses_the_studys_lr():
    """The study: a pretrained tiny fine-tunes best at a quarter of random initialisation's lr
    (CTC chars 1e-3, phones 5e-4); at 2e-3 it stays on CTC's all-blank plateau."""
    from ds_w2v.train.config import load_config

    runs = [(name, args) for name, args in readme_ds_w2v_commands() if name == "finetune-ctc"]
    assert runs
    for name, args in runs:
        recipe = args[args.index("--recipe") + 1]
        overrides = [a for a in args if "=" in a and not a.startswith("-")]
        config = load_config(recipe, overrides, task="ctc")
        if recipe.endswith("_tiny") and config.model.init:
            limit = 5e-4 if config.data.target == "phones" else 1e-3
            assert config.optim.lr <= limit, f"README fine-tunes a pretrained tiny at lr {config.optim.lr:g}"


# -- quick: the Python blocks run ----------------------------------------------------------------
PYTHON_PAGES = [README, ROOT / "docs" / "python_api.md"]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = code_blocks(page, "python")
    assert blocks, f"{page.name}: no python block"
    monkeypatch.chdir(tmp_path)  # save_model("ctc.pt") and the like land here
    for i, (heading, code) in enumerate(blocks):
        exec(compile(code, f"{page.name} [{heading}, python block {i + 1}]", "exec"), {"__name__": "__readme__"})


# -- slow: the own-audio quick start through the console script ----------------------------------
def _reader_folders(timit: Path, where: Path) -> tuple[int, int]:
    """``my_audio/`` (every utterance as a RIFF .wav) and ``my_labelled/`` (the same files with
    ``train.csv``: the TEST speakers' utterances, the most of this corpus (24 core-test speakers of
    30), ``dev.csv``: the TRAIN speakers' ones; ``path,text``, paths relative to the CSVs)."""
    import csv

    import soundfile as sf

    audio, labelled = where / "my_audio", where / "my_labelled"
    (labelled / "audio").mkdir(parents=True)
    audio.mkdir()
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    for wav in sorted(timit.rglob("*.WAV")):
        split = "dev" if "TRAIN" in wav.parts else "train"
        name = f"{wav.parent.name}_{wav.stem}.wav".lower()
        samples, rate = sf.read(wav, dtype="int16")  # TIMIT's .WAV is NIST SPHERE
        sf.write(audio / name, samples, rate, subtype="PCM_16")
        sf.write(labelled / "audio" / name, samples, rate, subtype="PCM_16")
        text = wav.with_suffix(".TXT").read_text().split(maxsplit=2)[2].strip()
        rows[split].append((f"audio/{name}", text))
    for split, items in rows.items():
        with open(labelled / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "text"])
            writer.writerows(items)
    return len(rows["train"]), len(rows["dev"])


def _run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env = {**environ, "DS_ACCELERATOR": "cpu", "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}"}
    proc = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{shlex.join(words)}\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def _expand(args: list[str], cwd: Path) -> list[str]:
    out = []
    for a in args:
        if any(c in a for c in "*?[") and "=" not in a:
            matches = sorted(str(Path(m)) for m in glob.glob(a, root_dir=cwd))
            assert matches, f"{a}: matches nothing in the scratch directory"
            out += matches
        else:
            out.append(a)
    return out


@pytest.mark.slow
def test_own_audio_quick_start(small_timit_shards, tmp_path):
    pytest.importorskip("deepspeed")
    steps = readme_ds_w2v_commands(OWN_AUDIO)
    names = [(name, args[args.index("--format") + 1] if "--format" in args else None) for name, args in steps]
    path = [("prepare", "dir"), ("pretrain", None), ("prepare", "csv"), ("finetune-ctc", None), ("transcribe", None)]
    walked = iter(names)
    assert all(step in walked for step in path), f"README's own-audio quick start no longer walks {path}: {names}"

    n_train, n_dev = _reader_folders(small_timit_shards.parent / "T", tmp_path)
    assert n_train >= 20 and n_dev >= 5
    wav_files = sorted((tmp_path / "my_audio").glob("*.wav"))
    for name, args in steps:
        words = [str(BIN / "ds-w2v"), name, *_expand(args, tmp_path), *APPENDED.get(name, ())]
        proc = _run(words, tmp_path)
        if name in ("pretrain", "finetune-ctc", "finetune-cls"):
            result = json.loads(proc.stdout)  # stdout is the result JSON alone
            assert result, proc.stdout
            recipe = args[args.index("--recipe") + 1]
            run_dir = next((a.partition("=")[2] for a in args if a.startswith("run_dir=")), f"runs/{recipe}")
            assert (tmp_path / run_dir / "model.json").is_file(), f"{shlex.join(words)}: no run in {run_dir}"
        if name == "transcribe":
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            given = [a for a in _expand(args, tmp_path) if a.lower().endswith(".wav")]
            assert len(lines) == len(given), proc.stdout[-2000:]
            if "my_audio/*.wav" in args:
                assert len(given) == len(wav_files)
