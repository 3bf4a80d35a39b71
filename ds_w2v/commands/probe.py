"""``ds-w2v probe UPSTREAM --data DIR``: probe a frozen model's layers (docs: ``ds_w2v/probe``).

    ds-w2v probe runs/pretrain --data shards/timit                          # linear + PR (TIMIT)
    ds-w2v probe tiny.pt --data shards/timit --data shards/ravdess --protocol all --out probe.json
    ds-w2v probe random:tiny --data shards/timit --protocol linear          # the random-init row
    ds-w2v probe hf_folder/ --data shards/ravdess --protocol er --cache probe_cache

UPSTREAM: a ds_w2v model file, a run directory (best checkpoint, else latest), a local HF
wav2vec2 folder, ``random:PRESET`` or ``random:MODEL`` (MODEL's architecture, fresh weights
drawn with ``--seed``). Protocols:

* ``linear``: CPC's linear phone classification -- one linear classifier per layer (conv
  features, transformer input, every block) from frames to the 39 TIMIT phones, trained on the
  train split, frame accuracy on the test split (needs shards with phone timings: TIMIT);
* ``pr``: SUPERB phone recognition -- weighted sum of layers, linear, CTC -> PER (TIMIT);
* ``er``: SUPERB emotion recognition -- weighted sum, 256, mean pool, linear -> accuracy
  (a labelled corpus: RAVDESS, CSV labels);
* ``all`` (default): every protocol each ``--data`` corpus supports.

PR and ER keep the epoch with the best score on ``--dev-split`` (default: ``dev`` when the corpus
has one); the test split is scored once. Frozen features are computed once per split and, with
``--cache DIR``, stored there: a second probe of the same model on the same utterances reads
them back. A bad UPSTREAM, a missing split or a corpus without what a protocol needs is refused,
before any feature is computed, with one line and exit status 2.

``probe.max_utterances=N``, ``probe.epochs=N`` and ``probe.train_split=S`` are the trainer's
``probe.*`` keys (the probe it runs every ``probe_every`` updates), read by the trainer's parser;
here they mean what ``--max-utterances``, ``--epochs`` and ``--train-split`` do.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROTOCOLS = ("linear", "pr", "er")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("upstream", help="model file, run directory, HF folder, random:PRESET or random:MODEL")
    p.add_argument("overrides", nargs="*", metavar="probe.KEY=value",
                   help="the trainer's probe.max_utterances / probe.epochs / probe.train_split (as the flags)")
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="a prepared corpus (ds-w2v prepare's --out); repeatable")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "all"], default="all")
    p.add_argument("--train-split", default="train")
    p.add_argument("--dev-split", default=None,
                   help="split choosing PR/ER's epoch (default: dev if the corpus has one; 'none': no dev split)")
    p.add_argument("--test-split", default="test")
    p.add_argument("--max-utterances", type=int, default=None, help="per split: the first N in shard order")
    p.add_argument("--epochs", type=int, default=None, help="training passes of every probe (default: each one's own)")
    p.add_argument("--cache", default=None, metavar="DIR", help="store / reuse frozen features here")
    p.add_argument("--batch-s", type=float, default=None, help="padded audio-seconds per forward pass (default 60)")
    p.add_argument("--seed", type=int, default=0, help="probe training (and random:... weights) seed")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--out", default=None, help="also write the results to this JSON file")
    return p


def main(args: argparse.Namespace) -> int:
    from ..inference import resolve_device
    from ..probe import load_upstream, model_fingerprint
    from ..train.tasks import load_init
    from ..probe.features import layer_names

    started = time.monotonic()
    # -- everything that can be refused, before any feature is computed ---------------------------
    try:
        _apply_overrides(args)
        if args.max_utterances is not None and args.max_utterances < 1:
            raise ValueError(f"--max-utterances must be >= 1, got {args.max_utterances}")
        if args.epochs is not None and args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        if args.batch_s is not None and not args.batch_s > 0:
            raise ValueError(f"--batch-s must be > 0, got {args.batch_s}")
        device = resolve_device(args.device)
        plans = [_plan(data, args) for data in dict.fromkeys(args.data)]
        model = load_upstream(args.upstream, seed=args.seed, load=load_init)  # run dirs too
    except (ValueError, FileNotFoundError) as e:
        print(f"ds-w2v probe: error: {e}", file=sys.stderr)
        return 2
    model.to(device)
    names = layer_names(model)
    fingerprint = model_fingerprint(model)  # the cache key's part, and which weights these results are of
    results = {"upstream": args.upstream, "upstream_fingerprint": fingerprint, "task": model.task, "layers": names,
               "device": str(device), "seed": args.seed, "datasets": {}}
    for plan in plans:
        results["datasets"][plan["data"]] = _run(model, plan, args, device, fingerprint)
    results["seconds"] = round(time.monotonic() - started, 2)
    for line in _table(results):
        print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


SHARED_KEYS = ("max_utterances", "epochs", "train_split")
"""The trainer's ``probe.*`` keys this command takes: each is also its argument's name."""


def _apply_overrides(args: argparse.Namespace) -> None:
    """``probe.KEY=value`` items onto the flags' values: parsed and typed as the trainer's
    ``probe`` section (``train.config.section_config``); a key of that section that means
    something else here (``data``, ``eval_split``) is refused naming its flag."""
    if not args.overrides:
        return
    from ..train.config import ProbeConfig, section_config

    section, given = section_config(ProbeConfig, "probe", args.overrides)
    other = sorted(given - set(SHARED_KEYS))
    if other:
        raise ValueError(f"probe.{other[0]}: not an option of ds-w2v probe (its flags: --data, --dev-split, "
                         f"--test-split); it takes probe.{', probe.'.join(SHARED_KEYS)}")
    for key in given:
        setattr(args, key, getattr(section, key))


def _plan(data: str, args: argparse.Namespace) -> dict:
    """What to run on one corpus and its utterances, read and checked (ValueError on a refusal)."""
    from ..data.shard_format import read_index
    from ..probe.utterances import read_utterances, require_labels, require_phone_spans, require_phones

    index = read_index(data)  # no dataset.json: one line naming the folder
    known = index["splits"]

    def check(split: str, flag: str) -> str:
        if split not in known:
            raise ValueError(f"{data}: no split {split!r} ({flag}); known splits: {', '.join(sorted(known))}")
        return split

    splits = {"train": check(args.train_split, "--train-split"), "test": check(args.test_split, "--test-split")}
    train = read_utterances(data, splits["train"], args.max_utterances)
    labels = index.get("labels")
    if args.protocol != "all":
        protocols = [args.protocol]
    else:
        protocols = (["linear", "pr"] if all(u.phones for u in train) else []) + (["er"] if labels else [])
        if not protocols:
            raise ValueError(f"{data}: a corpus with neither phone transcriptions (TIMIT) nor class labels: "
                             "nothing to probe")
    if protocols != ["linear"]:  # PR and ER choose their epoch on a dev split; the linear probe chooses nothing
        if args.dev_split is None:
            if "dev" in known:
                splits["dev"] = "dev"
        elif args.dev_split.lower() != "none":
            splits["dev"] = check(args.dev_split, "--dev-split")
    utts = {"train": train, **{role: read_utterances(data, split, args.max_utterances)
                               for role, split in splits.items() if role != "train"}}
    for role, split in splits.items():
        where = f"{data} ({split})"
        if "linear" in protocols and role != "dev":
            require_phone_spans(utts[role], where)
        if "pr" in protocols:
            require_phones(utts[role], where)
        if "er" in protocols:
            require_labels(utts[role], labels, where)
    return {"data": data, "splits": splits, "utterances": utts, "labels": labels, "protocols": protocols}


def _run(model, plan: dict, args: argparse.Namespace, device, fingerprint: str) -> dict:
    from ..data.shard_format import SAMPLE_RATE
    from ..probe import cached_features, emotion_recognition_probe, linear_probe_features, phone_recognition_probe
    from ..probe.features import DEFAULT_BATCH_S

    utts, splits = plan["utterances"], plan["splits"]
    feats, out = {}, {"protocols": plan["protocols"], "splits": {}}
    for role, split in splits.items():
        t = time.monotonic()
        feats[role], hit = cached_features(model, utts[role], args.cache, name=f"{Path(plan['data']).name}-{split}",
                                           batch_s=args.batch_s or DEFAULT_BATCH_S, fingerprint=fingerprint)
        out["splits"][role] = {"split": split, "utterances": len(utts[role]),
                               "audio_s": round(sum(u.num_samples for u in utts[role]) / SAMPLE_RATE, 2),
                               "frames": feats[role].num_frames,
                               "cache": "off" if args.cache is None else ("hit" if hit else "miss"),
                               "seconds": round(time.monotonic() - t, 2)}
    epochs = {"epochs": args.epochs} if args.epochs else {}
    common = {"seed": args.seed, "device": device, **epochs}
    dev = (feats.get("dev"), utts.get("dev"))
    for protocol in plan["protocols"]:
        t = time.monotonic()
        if protocol == "linear":
            r = linear_probe_features(feats["train"], utts["train"], feats["test"], utts["test"], **common)
        elif protocol == "pr":
            r = phone_recognition_probe(feats["train"], utts["train"], feats["test"], utts["test"], *dev, **common)
        else:
            r = emotion_recognition_probe(feats["train"], utts["train"], feats["test"], utts["test"], plan["labels"],
                                          *dev, **common)
        r["seconds"] = round(time.monotonic() - t, 2)
        out[protocol] = r
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _table(results: dict) -> list[str]:
    """Per corpus: one row per layer (linear accuracy, PR / ER layer weights), then the scores."""
    lines = [f"probe of {results['upstream']} ({results['task']} model, {len(results['layers'])} layers) "
             f"on {results['device']}, {results['seconds']} s"]
    for data, r in results["datasets"].items():
        lines.append("")
        lines.append(f"{data}: " + ", ".join(f"{role} {v['split']} {v['utterances']} utt / {v['audio_s']} s "
                                             f"(features {v['cache']}, {v['seconds']} s)"
                                             for role, v in r["splits"].items()))
        columns = {}  # title -> {layer: cell}
        if "linear" in r:
            columns["linear acc"] = {n: _pct(a) for n, a in r["linear"]["layers"].items()}
        for protocol in ("pr", "er"):
            if protocol in r:
                columns[f"{protocol.upper()} weight"] = {n: f"{w:.3f}" for n, w in r[protocol]["layer_weights"].items()}
        lines.append(f"  {'layer':<8}" + "".join(f"{title:>12}" for title in columns))
        for name in results["layers"]:
            lines.append(f"  {name:<8}" + "".join(f"{cells.get(name, '-'):>12}" for cells in columns.values()))
        if "linear" in r:
            lin = r["linear"]
            lines.append(f"  linear phone probe (CPC): best {lin['best_layer']} {_pct(lin['best_acc'])} frame accuracy "
                         f"on {lin['num_eval_frames']} test frames (majority '{lin['majority_phone']}' "
                         f"{_pct(lin['majority_acc'])})")
        if "pr" in r:
            pr = r["pr"]
            lines.append(f"  phone recognition (SUPERB PR): PER {_pct(pr['per'])} (dev {_pct(pr['dev_per'])}, "
                         f"epoch {pr['best_epoch']}/{pr['epochs']})")
        if "er" in r:
            er = r["er"]
            lines.append(f"  emotion recognition (SUPERB ER): accuracy {_pct(er['acc'])} (dev {_pct(er['dev_acc'])}, "
                         f"epoch {er['best_epoch']}/{er['epochs']}, chance {_pct(er['chance'])}, "
                         f"{len(er['labels'])} labels)")
    return lines
