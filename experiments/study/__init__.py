"""The study (issue 12, items 4 and 6): a fair ablation of self-supervised pretraining for tiny
on the synthetic corpora, and the longer CPU study around it (``bash launch/study.sh``).

    python -m experiments.study [--quick | --search] [--estimate]

plan.py         the plans, typed: corpora, pretraining, arms x lr grid x seeds, budgets; the cost estimate
corpora.py      ds-w2v synth + prepare of the labelled, unlabelled and emotion corpora; the 10 % subsets
jobs.py         the job kinds the demo's runner lacks (diverged runs recorded, any command, chosen-lr runs)
runner.py       a plan -> the job graph (demo.run_jobs) -> StudyOutcome, read from the runs' files
selection.py    lr chosen on dev per arm; mean and spread over seeds; test read from the chosen runs only
curves.py       probe accuracy against updates (the trainer's probe_every rows of metrics.jsonl)
goals.py        the two goals, PASS / MISS computed from the figures
hf_reference.py HF's Wav2Vec2ForPreTraining pretrained by a plain torch loop on the same recipe and stream
report.py       results/STUDY.md (and SEARCH.md) with tables and plots
"""
