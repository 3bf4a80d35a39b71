"""``ds-w2v bench lm TEXT --lmplz PATH``: ``ds-w2v build-lm`` against KenLM's ``lmplz`` on one
corpus: CPU time, peak memory, and how far apart the two ARPA files are (figures, not pass/fail).

    bible -f Gen1:1-Rev22:21 | cut -d' ' -f2- > kjv.txt      # apt-get install bible-kjv: 31,102 verses
    ds-w2v bench lm kjv.txt --lmplz kenlm/build/bin/lmplz --order 4

1. TEXT is normalised once as build-lm normalises it (``ds_w2v.text.normalize_text``; every line
   a sentence, an empty one too) into a temporary file, and both tools read that file, so they
   count the same words.
2. Each tool runs ``--repeats`` times as a child process: ``ds-w2v build-lm FILE --order N`` and
   ``lmplz -o N --discount_fallback -S 1G -T TMP`` (build-lm's defaults; ``-S 1G`` so lmplz does
   not size its sort buffers to 80 % of the machine). CPU is user + system seconds of the child
   and peak memory its max RSS (``os.wait4``; never below this process's own peak, which Linux
   carries across exec: ``/usr/bin/time -v`` gives a small tool's real figure); the figure is
   the median run. ``python -c "import ds_w2v"`` is measured alike: the share of build-lm's
   figures that is the package's import (torch) rather than counting.
3. The two ARPA files: the n-grams each has that the other lacks, max |Δ log10 p| and
   |Δ log10 backoff| over the shared ones (an absent back-off is 0), and the perplexity of each on
   the normalised text (``</s>`` counted, ``<s>`` not).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="a text file, one sentence a line (e.g. the KJV Bible, one verse a line)")
    parser.add_argument("--lmplz", default=shutil.which("lmplz"),
                        help="KenLM's lmplz binary (default: on PATH); without it only build-lm is measured")
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool, the median reported (default 3)")
    parser.add_argument("--no-perplexity", action="store_true", help="skip reading both files back for perplexity")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")


def _measure(argv: list[str], stdin=None, stdout=None) -> tuple[float, int, float]:
    """(CPU seconds user + system, max RSS in bytes, wall seconds) of one child process. The max
    RSS is a floor: Linux carries this process's own peak across vfork + exec into the child's
    ru_maxrss, so a child smaller than this process reads as this process (BENCHMARKS.md)."""
    # stderr to a file, not a pipe: nobody reads a pipe during wait4, and a full one would stall the child
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=err)
        # wait4: this child's own rusage (RUSAGE_CHILDREN would pool every child so far)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"{' '.join(argv)} failed (exit {proc.returncode}): {message}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, wall  # Linux: ru_maxrss in KiB


def _median_run(label: str, repeats: int, run) -> dict:
    runs = [run() for _ in range(repeats)]
    cpu, rss, wall = (statistics.median(x) for x in zip(*runs))
    print(f"  {label:<22} {cpu:6.2f} CPU-s  {rss / 2**20:7.0f} MB max RSS  {wall:6.2f} s wall"
          f"   (runs: {', '.join(f'{c:.2f}' for c, _, _ in runs)} CPU-s)")
    return {"cpu_s": cpu, "max_rss_mb": rss / 2**20, "wall_s": wall, "cpu_s_runs": [c for c, _, _ in runs]}


def _compare(ours_path: Path, kenlm_path: Path) -> dict:
    from ..lm.arpa import read_arpa

    ours, kenlm = read_arpa(ours_path), read_arpa(kenlm_path)
    only_ours = only_kenlm = 0
    worst_p = worst_b = 0.0
    for k in range(min(ours.order, kenlm.order)):
        a, b = ours.log10_p[k], kenlm.log10_p[k]
        only_ours += len(a.keys() - b.keys())
        only_kenlm += len(b.keys() - a.keys())
        worst_p = max([worst_p] + [abs(p - b[g]) for g, p in a.items() if g in b])
        if k < ours.order - 1:
            ba, bb = ours.log10_backoff[k], kenlm.log10_backoff[k]
            worst_b = max([worst_b] + [abs(ba.get(g, 0.0) - bb.get(g, 0.0)) for g in a if g in b])
    return {"ngrams_ours": [len(p) for p in ours.log10_p], "only_in_build_lm": only_ours,
            "only_in_lmplz": only_kenlm, "max_abs_dlog10_p": worst_p, "max_abs_dlog10_backoff": worst_b,
            "models": (ours, kenlm)}


def _perplexity(lm, text: Path) -> float:
    from ..lm.ngram import BOS, EOS

    total = count = 0
    with open(text, encoding="utf-8") as f:
        for line in f:
            history = [BOS]
            for word in line.split() + [EOS]:
                total += lm.log10_prob(word, history[-(lm.order - 1):])
                history.append(word)
                count += 1
    return 10 ** (-total / count)


def run(args: argparse.Namespace) -> int:
    from ..hardware import Machine
    from ..lm.corpus import read_sentences

    if args.lmplz and not Path(args.lmplz).is_file():
        raise FileNotFoundError(f"--lmplz {args.lmplz}: no such file")
    figures: dict = {"machine": Machine.read().line(), "load_average_start": os.getloadavg()[0],
                     "order": args.order, "text": str(args.text)}
    with tempfile.TemporaryDirectory(prefix="bench_lm_") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        words = lines = 0
        with open(corpus, "w", encoding="utf-8") as f:
            for sentence in read_sentences([args.text]):
                f.write(sentence + "\n")
                lines += 1
                words += len(sentence.split())
        figures.update(lines=lines, words=words)
        print(f"bench lm: {args.text}, {lines:,} lines, {words:,} words (normalised), order {args.order}; "
              f"{figures['machine']}")
        ours_arpa, kenlm_arpa = tmp / "build_lm.arpa", tmp / "lmplz.arpa"
        ds_w2v = [sys.executable, "-m", "ds_w2v.cli"] if not shutil.which("ds-w2v") else [shutil.which("ds-w2v")]
        figures["import_ds_w2v"] = _median_run("python -c 'import ds_w2v'", args.repeats,
                                               lambda: _measure([sys.executable, "-c", "import ds_w2v"]))
        figures["build_lm"] = _median_run("ds-w2v build-lm", args.repeats, lambda: _measure(
            [*ds_w2v, "build-lm", str(corpus), "--order", str(args.order), "--out", str(ours_arpa)]))
        if not args.lmplz:
            print("  lmplz: not given (--lmplz) and not on PATH: build-lm alone measured")
        else:
            def lmplz():
                with open(corpus, "rb") as stdin, open(kenlm_arpa, "wb") as stdout:
                    return _measure([args.lmplz, "-o", str(args.order), "--discount_fallback", "-S", "1G",
                                     "-T", f"{tmp}/"], stdin=stdin, stdout=stdout)

            figures["lmplz"] = _median_run("lmplz -S 1G", args.repeats, lmplz)
            ours, kenlm = figures["build_lm"], figures["lmplz"]
            figures["cpu_ratio"] = ours["cpu_s"] / kenlm["cpu_s"]
            figures["rss_ratio"] = ours["max_rss_mb"] / kenlm["max_rss_mb"]
            print(f"  build-lm / lmplz: {figures['cpu_ratio']:.1f}x the CPU, {figures['rss_ratio']:.2f}x the memory "
                  f"(of which import ds_w2v: {figures['import_ds_w2v']['cpu_s']:.2f} CPU-s, "
                  f"{figures['import_ds_w2v']['max_rss_mb']:.0f} MB)")
            compared = _compare(ours_arpa, kenlm_arpa)
            models = compared.pop("models")
            figures["compare"] = compared
            print(f"  ARPA files: n-grams {compared['ngrams_ours']}, only in build-lm {compared['only_in_build_lm']}, "
                  f"only in lmplz {compared['only_in_lmplz']}; max |dlog10 p| {compared['max_abs_dlog10_p']:.2g}, "
                  f"max |dlog10 backoff| {compared['max_abs_dlog10_backoff']:.2g}")
            if not args.no_perplexity:
                ppl = [_perplexity(m, corpus) for m in models]
                figures["perplexity"] = {"build_lm": ppl[0], "lmplz": ppl[1]}
                print(f"  perplexity on the text: build-lm {ppl[0]:.4f}, lmplz {ppl[1]:.4f}")
    figures["load_average_end"] = os.getloadavg()[0]
    print(f"  load average {figures['load_average_start']:.1f} at the start, {figures['load_average_end']:.1f} "
          "at the end")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0
