"""Offline demo corpora synthesised with espeak-ng, in the real TIMIT and RAVDESS layouts.

Why: the licensed corpora are not always at hand (CI, a fresh machine, no network), yet the
readers, ``prepare``, the CTC and classification recipes must run end to end on something
with the same on-disk conventions. These corpora are that something; numbers measured on them
say nothing about the real datasets.

    espeak.py   ctypes binding to libespeak-ng from the espeakng-loader wheel
    voices.py   English accents x voice variants x per-speaker prosody
    lexicon.py  word lists and inflection;  grammar.py  seeded sentence templates
    phones.py   espeak phoneme events -> TIMIT 61-phone .PHN and .WRD segments
    audio.py    resampling, room-noise floor, int16, SPHERE/WAV writing
    jobs.py     parallel jobs, each from a pristine espeak state (byte-identical output)
    timit.py    read speech: TRAIN|TEST/DR*/<speaker>/{SA,SX,SI}*.WAV + .TXT/.WRD/.PHN
    ravdess.py  emotional speech: Actor_XX/03-01-EE-II-SS-RR-AA.wav, prosody per emotion

Entry point: ``ds-w2v synth {timit,ravdess} --out DIR`` (:mod:`ds_w2v.commands.synth`).
"""
