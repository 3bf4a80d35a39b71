"""Language models for CTC decoding: n-gram counting and smoothing, ARPA files, beam search.

    ngram.py    interpolated modified Kneser-Ney from counts (no compiler, no dependency)
    arpa.py     the ARPA format: write a model, read one back (its words make the lexicon)
    corpus.py   the text an LM is counted from: text files, a prepared corpus's transcripts
    decoder.py  DecodingConfig; greedy and beam-search (flashlight-text, the ``lm`` extra) decoders

Command line: ``ds-w2v build-lm``, ``ds-w2v transcribe --decoder beam``, ``ds-w2v evaluate
--tune-lm``; config: ``decoding.*``. Nothing here imports flashlight-text until a beam decoder
is built, so the package works without the extra.
"""
