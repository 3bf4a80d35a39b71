"""``ds-w2v bench decode MODEL --data SHARDS --lm LM.arpa``: greedy vs beam search with an n-gram LM,
speed and error rates (figures, not pass/fail), and the library comparison behind the ``lm`` extra.

    ds-w2v bench decode ctc.pt --data demo_data/shards/timit --lm timit4.arpa --lm chars8.arpa
    PYTHONPATH=/tmp/pyctc ds-w2v bench decode ctc.pt --data ... --lm timit4.arpa --library flashlight pyctcdecode

1. The model's ln-probabilities of every utterance of the tuning split (``--tune-split``, dev)
   and the scored split (``--split``, test) are computed once, one utterance a forward pass (no
   padding): decoders are then compared on the same numbers, and the forward's own time is
   reported apart.
2. Greedy decoding of the scored split: WER, CER, time.
3. For each LM and library: (lm_weight, word_score) chosen on the tuning split over the grid
   (lowest WER, then CER), then the scored split decoded once with the choice. The scored split
   never chooses anything.

Speed is decoding alone, in CPU-seconds of this process (``time.process_time``: on a shared
machine wall time measures the neighbours), as utterances per CPU-second and real-time factor
(CPU-seconds per audio-second; < 1 is faster than real time). Both libraries decode on one
thread. pyctcdecode's ``alpha`` weighs ln probabilities where flashlight's ``lm_weight`` weighs
log10 ones: its grid is flashlight's divided by ln 10, so both search the same weights.
pyctcdecode needs ``pip install pyctcdecode kenlm`` (kenlm compiles KenLM: a C++ compiler); it
is measured here only, never used by the package.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

LIBRARIES = ("flashlight", "pyctcdecode")
DEFAULT_LM_WEIGHTS = "0,0.5,1,2,3"
DEFAULT_WORD_SCORES = "-2,-1,0,1,2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a CTC model file (or HF folder)")
    parser.add_argument("--data", required=True, help="a prepared directory with transcripts")
    parser.add_argument("--lm", action="append", required=True, help="ARPA file (repeatable)")
    parser.add_argument("--split", default="test", help="the split scored (default test)")
    parser.add_argument("--tune-split", default="dev", help="the split the weights are chosen on (default dev)")
    parser.add_argument("--library", nargs="+", choices=LIBRARIES, default=["flashlight"])
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-weights", default=DEFAULT_LM_WEIGHTS, help="grid, flashlight units (log10 LM)")
    parser.add_argument("--word-scores", default=DEFAULT_WORD_SCORES, help="grid")
    parser.add_argument("--max-utterances", type=int, default=None, help="per split (default: all)")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")


def _utterances(shards: str, split: str, limit: int | None):
    """(id, int16 pcm, normalised transcript) of a split, in shard order; the first ``limit``
    (None or 0: all)."""
    from ..data.reader import split_utterances

    return [(utt.key, utt.pcm, utt.record.get("text") or "")
            for utt in split_utterances(shards, split, limit=limit or None)]


def _emissions(model, utterances) -> tuple[list, float]:
    """ln-probabilities [T, V] (float32 CPU tensors) per utterance, and the forward CPU-seconds."""
    import torch

    from ..lm.decoder import log_probs

    out = []
    start = time.process_time()
    with torch.inference_mode():
        for _, pcm, _ in utterances:
            audio = torch.from_numpy(pcm.astype("float32") / 32768.0)[None]
            o = model(audio, torch.tensor([len(pcm)]))
            out.append(log_probs(o.logits)[0, : int(o.frame_lengths[0])])
    return out, time.process_time() - start


def _errors(refs, hyps) -> dict:
    import jiwer

    from ..text import edit_errors

    w, words = edit_errors(refs, hyps, jiwer.process_words)
    c, chars = edit_errors(refs, hyps, jiwer.process_characters)
    return {"wer": w / max(words, 1), "cer": c / max(chars, 1)}


def _timed(decode_one, emissions) -> tuple[list[str], float]:
    start = time.process_time()
    hyps = [decode_one(e) for e in emissions]
    return hyps, time.process_time() - start


class _PyCTCDecode:
    """pyctcdecode over the same ln-probabilities; ``alpha`` = lm_weight / ln 10 (module docstring)."""

    def __init__(self, vocab, lm: str, beam: int):
        from pyctcdecode import build_ctcdecoder

        from ..text import BLANK_ID, WORD_DELIM

        # pyctcdecode's conventions: "" is the blank, " " the word delimiter; the other specials
        # keep their names (never written: their ln-probabilities are the model's, ~ -inf)
        labels = ["" if i == BLANK_ID else " " if t == WORD_DELIM else t for i, t in enumerate(vocab.tokens)]
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=lm)
        self.beam = beam

    def with_weights(self, lm_weight: float, word_score: float):
        self.decoder.reset_params(alpha=float(lm_weight) / math.log(10), beta=float(word_score))
        return self

    def decode_one(self, emissions) -> str:
        return " ".join(self.decoder.decode(emissions.numpy(), beam_width=self.beam).split())


def run(args: argparse.Namespace) -> int:
    import torch

    from ..inference import load_task_model
    from ..lm.arpa import read_vocabulary
    from ..lm.decoder import BeamDecoder, GreedyDecoder
    from ..train.lm_tuning import parse_grid
    from .harness import load_average, machine_name

    torch.set_num_threads(1)  # the decoders run on one thread; so does the forward, for a fair RTF
    lm_weights = parse_grid(args.lm_weights, "--lm-weights")
    word_scores = parse_grid(args.word_scores, "--word-scores")
    model = load_task_model(args.model, "ctc").eval()
    load_at_start = load_average()
    data = {}
    for split in (args.tune_split, args.split):
        utts = _utterances(args.data, split, args.max_utterances)
        emissions, forward_s = _emissions(model, utts)
        data[split] = {"refs": [u[2] for u in utts], "emissions": emissions, "forward_cpu_s": forward_s,
                       "audio_s": sum(len(u[1]) for u in utts) / 16000.0}
    scored = data[args.split]
    n, audio_s = len(scored["refs"]), scored["audio_s"]
    print(f"bench decode: {args.model} on {args.data} {args.split} ({n} utterances, {audio_s:.0f} audio-s), weights "
          f"chosen on {args.tune_split} ({len(data[args.tune_split]['refs'])} utterances); "
          f"{machine_name(torch.device('cpu'))}")
    print(f"forward (1 thread): {scored['forward_cpu_s'] / audio_s:.4f} CPU-s per audio-s")
    rows = []

    def row(name, hyps, cpu_s, **extra):
        r = {"decoder": name, **_errors(scored["refs"], hyps), "cpu_s": cpu_s, "utt_per_cpu_s": n / cpu_s,
             "rtf": cpu_s / audio_s, **extra}
        rows.append(r)
        weights = (f"  (lm_weight {extra['lm_weight']:g}, word_score {extra['word_score']:g})"
                   if "lm_weight" in extra else "")
        print(f"  {name:<44} WER {100 * r['wer']:5.1f} %  CER {100 * r['cer']:5.1f} %  "
              f"{r['utt_per_cpu_s']:8.1f} utt/CPU-s  RTF {r['rtf']:.5f}{weights}", flush=True)

    greedy = GreedyDecoder(model.vocab)
    hyps, cpu_s = _timed(lambda e: greedy.decode(e[None], torch.tensor([len(e)]))[0], scored["emissions"])
    row("greedy", hyps, cpu_s)
    for lm in args.lm:
        kind = "char" if "|" in read_vocabulary(lm) else "word"
        for library in args.library:
            if library == "pyctcdecode" and kind == "char":
                continue  # pyctcdecode's LM is a word LM only
            base = (BeamDecoder(model.vocab, lm, beam=args.beam) if library == "flashlight"
                    else _PyCTCDecode(model.vocab, lm, args.beam))
            tune = data[args.tune_split]
            grid = []
            tune_cpu_s = 0.0
            for w in lm_weights:
                for s in word_scores:
                    decoder = base.with_weights(w, s)
                    hyps, cpu_s = _timed(decoder.decode_one, tune["emissions"])
                    tune_cpu_s += cpu_s
                    grid.append({"lm_weight": w, "word_score": s, **_errors(tune["refs"], hyps)})
            best = min(grid, key=lambda p: (p["wer"], p["cer"], abs(p["lm_weight"]), abs(p["word_score"])))
            decoder = base.with_weights(best["lm_weight"], best["word_score"])
            hyps, cpu_s = _timed(decoder.decode_one, scored["emissions"])
            row(f"{library} beam {args.beam}, {kind} LM {Path(lm).name}", hyps, cpu_s, lm_weight=best["lm_weight"],
                word_score=best["word_score"], tune_wer=best["wer"], tune_cer=best["cer"], tune_grid=grid,
                tune_cpu_s=tune_cpu_s, examples=[[r, h] for r, h in zip(scored["refs"][:3], hyps[:3])])
    print(f"load average {load_at_start} at the start, {load_average()} at the end")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "data": args.data, "split": args.split,
                                              "tune_split": args.tune_split, "utterances": n, "audio_s": audio_s,
                                              "beam": args.beam, "rows": rows}, indent=1) + "\n")
    return 0
