"""``ds-w2v build-lm TEXT... --out lm.arpa``: an n-gram LM for beam search decoding.

    ds-w2v build-lm demo_data/shards/timit --order 4 --out timit_4gram.arpa     # the train transcripts
    ds-w2v build-lm corpus.txt more.txt --order 3 --out words.arpa               # one sentence a line
    ds-w2v build-lm demo_data/shards/timit --unit char --order 6 --out chars.arpa

Each TEXT is a plain text file (UTF-8, one sentence a line) or a directory made by ``ds-w2v
prepare`` (the transcripts of its ``--split``, default train: never build the LM from the
splits you score). Lines are normalised as the CTC targets are. The model is interpolated
modified Kneser-Ney (``ds_w2v/lm/ngram.py``), written as ARPA; any KenLM-reading decoder takes
it, and ``ds-w2v transcribe --decoder beam --lm`` / ``decoding.lm`` use it:

* ``--unit word`` (default): a word LM; the beam search keeps to its words (a lexicon);
* ``--unit char``: characters and the word delimiter ``|``; the beam search may write any word.
  Characters need a longer history than words: order 6, the most flashlight-text's KenLM reads
  (it is built with KENLM_MAX_ORDER=6; ``--order`` above that writes a file only other tools read).

Every line is a sentence, an empty one too (``<s> </s>``, as lmplz counts it). The file is the
one KenLM's ``lmplz -o ORDER --discount_fallback < text > lm.arpa`` writes from the normalised
text (to float32 rounding; ``tests/lm/assets/``). Counting is in memory (numpy), ~170 bytes a
word at the peak (the 790k-word KJV Bible: 130 MB, 1.5 CPU-s); for corpora that do not fit, use
lmplz on the normalised text.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path


def build_parser(prog: str) -> argparse.ArgumentParser:
    from ..lm.corpus import UNITS

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="+", metavar="TEXT", help="text files (one sentence a line) or prepared directories")
    p.add_argument("--out", required=True, help="the ARPA file to write")
    p.add_argument("--order", type=int, default=4, help="n-gram order (default 4, wav2vec 2.0's word LM)")
    p.add_argument("--unit", choices=UNITS, default="word", help="word (default) or char n-grams")
    p.add_argument("--split", default="train", help="the split read from a prepared directory (default train)")
    return p


def main(args: argparse.Namespace) -> int:
    from ..lm.arpa import write_arpa
    from ..lm.corpus import read_sentences, sentence_tokens
    from ..lm.ngram import count_ngrams, estimate_arrays

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.order < 1:
        raise ValueError(f"--order must be >= 1, got {args.order}")
    start = time.perf_counter()
    num_sentences = num_empty = num_tokens = 0

    def sentences():
        nonlocal num_sentences, num_empty, num_tokens
        for text in read_sentences(args.text, args.split):
            tokens = sentence_tokens(text, args.unit)
            num_sentences += bool(tokens)
            num_empty += not tokens
            num_tokens += len(tokens)
            yield tokens

    counted = count_ngrams(sentences(), args.order)
    if not num_tokens:
        raise ValueError(f"{' '.join(args.text)}: no text to count (every line empty once normalised)")
    lm = estimate_arrays(counted)
    del counted  # the raw counts (~16 bytes an n-gram) are not needed to write the file
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # as every --out of ds-w2v: its folder is made
    write_arpa(lm, args.out)
    counts = ", ".join(f"{k + 1}-grams {len(g):,}" for k, g in enumerate(lm.grams))
    # empty lines said apart: they are sentences (<s> </s>) to the model, but no text
    empty = f" and {num_empty:,} empty line{'s' * (num_empty != 1)} (<s> </s>, as lmplz counts them)" if num_empty else ""
    print(f"{args.out}: {args.unit} {args.order}-gram LM from {num_sentences:,} sentences, {num_tokens:,} {args.unit}s "
          f"({len(lm.vocab) - 3:,} distinct; {counts}){empty} in {time.perf_counter() - start:.1f} s")
    return 0
