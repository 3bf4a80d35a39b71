"""What the GPU check reads back and writes out: pytest's results (junit XML, or the verbose lines
of a run cut short), a run's metrics.jsonl medians, and ``summary.md`` in the layout of
BENCHMARKS.md (a heading per benchmark, the command, machine and date, then one table)."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

# `pytest -v`: "tests/gpu/test_x.py::test_y[a-b] PASSED   [ 50%]"; the node id is written when the test
# starts, its outcome when it ends, so a run killed mid-test leaves a line with a node id and no outcome
_VERBOSE = re.compile(r"^(?P<node>\S+\.py::\S+)(?:\s+(?P<outcome>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"
                      r"(?:\s*\((?P<reason>.*?)\))?)?")


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts and the failing / skipped tests of a pytest junit XML file."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    out: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": []}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            message = (bad.get("message") or "").splitlines()
            out["failed"] += 1
            out["failures"].append(f"{name}: {message[0][:200] if message else ''}")
        elif case.find("skipped") is not None:
            out["skipped"] += 1
            out["skips"].append(f"{name}: {(case.find('skipped').get('message') or '')[:200]}")
        else:
            out["passed"] += 1
    return out


def parse_pytest_verbose(text: str) -> dict[str, Any]:
    """What ``pytest -v`` printed before it ended or was killed: the same counts as
    :func:`parse_junit`, and ``cut``: the test that was running when the output stops, if any."""
    out: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": [], "cut": None}
    for line in text.splitlines():
        m = _VERBOSE.match(line.strip())
        if not m:
            continue
        node, outcome = m.group("node"), m.group("outcome")
        if outcome is None:
            out["cut"] = node  # started; an outcome line would follow, unless this is where it stopped
            continue
        out["cut"] = None
        if outcome in ("PASSED", "XFAIL", "XPASS"):
            out["passed"] += 1
        elif outcome == "SKIPPED":
            out["skipped"] += 1
            out["skips"].append(f"{node}: {m.group('reason') or ''}"[:300])
        else:
            out["failed"] += 1
            out["failures"].append(f"{node}: {outcome}")
    return out


def summarise_metrics(path: Path, skip_first: int = 1) -> dict[str, Any]:
    """Medians of the perf figures of a run's metrics.jsonl (its first logged row left out: start-up)."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "perf/audio_s_per_s" in r]
    use = train[skip_first:] or train
    out: dict[str, Any] = {"last_logged_update": train[-1]["update"] if train else None}
    for key, name in (("perf/audio_s_per_s", "audio_s_per_s"), ("perf/mfu", "mfu"), ("perf/data_wait", "data_wait"),
                      ("perf/update_s", "update_s"), ("train/loss", "loss")):
        values = [r[key] for r in use if key in r]
        if values:
            out[name] = statistics.median(values)
    return out


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _note(s: dict[str, Any]) -> str:
    return str(s.get("error") or "")[:160].replace("|", "/").replace("\n", " ")


def _environment(env: dict[str, Any], ops: dict[str, Any]) -> list[str]:
    lines = ["", "## Environment", "",
             f"GPU {env.get('gpu') or 'none'} ({_fmt(env.get('gpu_mem_gib'))} GiB), torch {env.get('torch')} "
             f"(CUDA {env.get('cuda')}), DeepSpeed {env.get('deepspeed')}, transformers {env.get('transformers')}, "
             f"nvcc {env.get('nvcc') or 'none'}, Python {env.get('python')}; "
             + ", ".join(f"{m} {env.get(m)}" for m in ("webdataset", "jiwer", "soundfile", "soxr", "espeakng-loader"))
             + "."]
    builds = ops.get("builds") or {}
    if builds:
        lines += ["", "| DeepSpeed op | build | seconds | note |", "|---|---|---|---|"]
        for builder, b in builds.items():
            note = b.get("error") or ""
            if b.get("removed_locks"):
                note += f" (stale lock removed: {', '.join(b['removed_locks'])})"
            lines.append(f"| {builder} | {b.get('status')} | {_fmt(b.get('seconds'), '.1f')} | "
                         f"{note[:200].replace('|', '/')} |")
    if env.get("sdpa"):
        lines += ["", "| SDPA backend (bf16 on GPU, fp32 on CPU; padding mask) | usable |", "|---|---|"]
        lines += [f"| {backend} | {ok} |" for backend, ok in env["sdpa"].items()]
    return lines


def _tests(tests: dict[str, Any]) -> list[str]:
    lines = ["", "## `pytest -m gpu`", "", f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
             f"{tests.get('skipped', 0)} skipped.", "", "| file | status | seconds | passed | failed | skipped | "
             "cut during |", "|---|---|---|---|---|---|---|"]
    for name, f in (tests.get("files") or {}).items():
        lines.append(f"| {name} | {f.get('status')} | {_fmt(f.get('seconds'), '.0f')} | {f.get('passed', 0)} | "
                     f"{f.get('failed', 0)} | {f.get('skipped', 0)} | {f.get('cut') or ''} |")
    lines += [""] if tests.get("failures") or tests.get("skips") else []
    lines += [f"- failed: {f}" for f in tests.get("failures", [])]
    lines += [f"- skipped: {s}" for s in tests.get("skips", [])]
    return lines


def _bench(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"## {title}", "", "| preset | batch | dtype | ours s/update | HF s/update | ours/HF | "
             "ours audio-s/s | ours MFU | ours peak MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('preset')} | {r.get('batch')} x {r.get('seconds')} s | "
                     f"{r.get('dtype') or r.get('precision')} {('ZeRO-' + str(r['zero'])) if 'zero' in r else ''} | "
                     f"{_fmt(r.get('ours_s'))} | {_fmt(r.get('hf_s'))} | **{_fmt(r.get('ratio'), '.2f')}** | "
                     f"{_fmt(r.get('ours_audio_s_per_s'), '.1f')} | {_fmt(r.get('ours_mfu'), '.1%')} | "
                     f"{_fmt(r.get('ours_peak_mem_mib'), '.0f')} |")
    return lines


def render_summary(data: dict[str, Any]) -> str:
    """The check as markdown."""
    steps = data["steps"]
    mode = "CPU dry run (tiny)" if data["dry_run"] else "GPU"
    lines = [f"# gpu_check — {mode}", "",
             f"`bash launch/gpu_check.sh{' --dry-run' if data['dry_run'] else ''} --minutes {data['minutes']:g}`, "
             f"{data['machine']}, started {data['started']}.", "", "| step | status | seconds | note |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {s['status']} | {s['seconds']:.0f} | {_note(s)} |" for name, s in steps.items()]
    env = steps.get("env", {})
    if env.get("torch"):
        lines += _environment(env, steps.get("ops", {}))
    if "files" in steps.get("tests", {}) or "passed" in steps.get("tests", {}):
        lines += _tests(steps["tests"])
    for names, title in ((("bench_step",), "`ds-w2v bench step`"),
                         (("bench_train", "precision", "zero_memory"), "`ds-w2v bench train`"),
                         (("bench_sizes",), "`ds-w2v bench train`, other sizes")):
        rows = [r for n in names for r in steps.get(n, {}).get("rows") or []]
        if rows:
            lines += _bench(title, rows)
    mb = steps.get("max_batch", {})
    if mb.get("tries"):
        lines += ["", "## Largest batch that fits (one update, engine built per try)", "",
                  f"{mb.get('preset')} {mb.get('precision')} ZeRO-{mb.get('zero')}, utterances of "
                  f"{mb.get('seconds')} s: **{_fmt(mb.get('largest'))}** fit"
                  + (f", {mb['oom_at']} ran out of memory" if mb.get("oom_at") else f" (none ran out up to "
                                                                                       f"{mb.get('limit')})") + ".",
                  "", "| batch | fits | peak MiB | seconds |", "|---|---|---|---|"]
        lines += [f"| {t['batch']} | {t['fits']} | {_fmt(t.get('peak_mib'), '.0f')} | {_fmt(t.get('seconds'))} |"
                  for t in mb["tries"]]
    matmul = steps.get("matmul", {})
    measured = matmul.get("tflops")
    runs = [(n, steps[n]) for n in ("pretrain", "finetune_ctc", "pretrain_prefetch", "pretrain_compile")
            if n in steps and steps[n].get("audio_s_per_s")]
    if runs:
        lines += ["", "## End to end (`python -m ds_w2v.train`, data workers, metrics.jsonl medians)", "",
                  "| run | options | updates | audio-s/s | MFU | MFU of measured matmul | data wait | s/update | loss |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n, s in runs:
            of_measured = None
            if measured and s.get("mfu") and s.get("peak_flops"):
                of_measured = s["mfu"] * s["peak_flops"] / (measured * 1e12)
            lines.append(f"| {n} | {s.get('options') or ''} | {_fmt(s.get('updates'))} | "
                         f"{_fmt(s.get('audio_s_per_s'), '.1f')} | {_fmt(s.get('mfu'), '.1%')} | "
                         f"{_fmt(of_measured, '.1%')} | {_fmt(s.get('data_wait'), '.1%')} | "
                         f"{_fmt(s.get('update_s'), '.3f')} | {_fmt(s.get('loss'), '.3f')} |")
    loader = steps.get("loader", {})
    if loader.get("epochs"):
        lines += ["", f"## The training stream alone ({loader.get('workers')} workers, pretrain batches of "
                      f"{loader.get('batch_s')} s, {loader.get('split_hours')} h split)", "",
                  "| epoch | seconds | audio-s | audio-s/s |", "|---|---|---|---|"]
        lines += [f"| {i + 1}{' (workers start)' if i == 0 else ''} | {e['seconds']} | {e['audio_s']} | "
                  f"{e['audio_s_per_s']} |" for i, e in enumerate(loader["epochs"])]
    if measured:
        lines += ["", f"## Dense matmul ({matmul.get('dtype')}, {matmul.get('size')}^3, {matmul.get('device')})", "",
                  f"{measured:.3g} TFLOP/s: the ceiling MFU is put against above (\"MFU of measured matmul\")."]
    return "\n".join(lines) + "\n"
