"""Research around ds_w2v, kept out of the package (it is not in the wheel) and run from a checkout:

    demo.py      the demo: synthetic corpora -> pretraining, CTC and emotion fine-tunes, probes, LM row
                 (``bash launch/demo.sh`` -> ``python -m experiments.demo``), tables in results/RESULTS.md
    report.py    the demo's report (results/RESULTS.md)
    study/       the fair comparison of pretrained and random initialisation, and the recipe search
                 (``bash launch/study.sh`` -> ``python -m experiments.study``), results/STUDY.md and SEARCH.md

They drive ds_w2v through its console commands (``ds-w2v pretrain``, ``probe``, ...) and read what
those write; the few library calls they make are to ds_w2v's data, model and training modules.
"""
