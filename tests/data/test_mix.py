"""Several corpora in one training stream (ds_w2v/data/mix.py): the entry syntax and its refusals,
the temperature draw, equal counts across ranks, bit-exact resume, independent epochs."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from ds_w2v.data import StreamConfig, StreamingLoader, read_split
from ds_w2v.data.mix import MixedLoader, draw_sources, mix_probabilities
from ds_w2v.data.mix_sources import MixSource, mix_labels, parse_mix, read_mix
from ds_w2v.data.prefetch import BatchFeed

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import random_durations, write_split  # noqa: E402

BATCH_S = 8.0


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    """Three prepared directories of different sizes: a/ (train ~60 s, dev), b/ (clean ~110 s),
    c/ (other ~160 s); and d/, e/: a "train" each with another vocabulary, other labels."""
    root = tmp_path_factory.mktemp("mix")
    index = write_split(root / "a", "train", random_durations(0, [6, 6, 6]))
    write_split(root / "a", "dev", random_durations(1, [4]), index=index)
    write_split(root / "b", "clean", random_durations(2, [16, 18]))
    write_split(root / "c", "other", random_durations(3, [8, 8, 8, 8, 8, 8]))
    for name, key, value in (("d", "vocab", {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5}),
                             ("e", "labels", ["sad", "calm"])):
        write_split(root / name, "train", random_durations(4, [5]))
        path = root / name / "dataset.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    return root


def _entries(root: Path) -> list[str]:
    return [str(root / "a"), f"{root / 'b'}:clean", f"{root / 'c'}:other@2"]


def _loader(root: Path, alpha: float = 1.0, **kw) -> MixedLoader:
    cfg = StreamConfig(kind=kw.pop("kind", "finetune"), batch_s=BATCH_S, shuffle_buffer=16,
                       num_workers=kw.pop("num_workers", 0))
    return MixedLoader.from_entries(_entries(root), cfg, temperature_alpha=alpha,
                                    rank=kw.pop("rank", 0), world_size=kw.pop("world_size", 1), **kw)


def _source(batch) -> str:
    """The split a batch came from: test ids are ``{split}_s{shard}_{j}``."""
    splits = {i.split("_")[0] for i in batch.ids}
    assert len(splits) == 1, batch.ids
    return splits.pop()


def _take(it, n: int) -> list[tuple[list[str], bytes]]:
    return [(list(b.ids), b.audio.numpy().tobytes()) for b in (next(it) for _ in range(n))]


# -- parsing -------------------------------------------------------------------------------------
def test_parse_forms(corpora, tmp_path):
    a, b, c = (str(corpora / n) for n in "abc")
    assert parse_mix([a, f"{b}:clean", f"{c}:other@2", f"{a}:dev@0.5"]) == [
        MixSource(a, "train"), MixSource(b, "clean"), MixSource(c, "other", 2.0), MixSource(a, "dev", 0.5)]
    assert parse_mix(a, default_split="dev") == [MixSource(a, "dev")]  # one entry, no list
    assert parse_mix([f"{b}@3"], default_split="clean") == [MixSource(b, "clean", 3.0)]
    assert parse_mix([{"shards": b, "split": "clean", "weight": 1.5}, {"shards": a, "url_prefix": "https://h/a/"}]) == [
        MixSource(b, "clean", 1.5), MixSource(a, "train", 1.0, "https://h/a/")]
    # directory names holding '@' or ':' are read whole when they exist, and with a split or weight after them
    odd = tmp_path / "ls@v2"
    colon = tmp_path / "x:train"
    odd.mkdir(), colon.mkdir()
    assert parse_mix([str(odd)]) == [MixSource(str(odd), "train")]
    assert parse_mix([f"{odd}:dev"]) == [MixSource(str(odd), "dev")]
    assert parse_mix([str(colon)], default_split="s") == [MixSource(str(colon), "s")]
    assert parse_mix([f"{colon}@2"], default_split="s") == [MixSource(str(colon), "s", 2.0)]
    labels = mix_labels(parse_mix([a, f"{a}:dev", f"{b}:clean"]))
    assert labels == ["train", "dev", "clean"]
    assert mix_labels([MixSource(a, "train"), MixSource(str(odd), "train")]) == ["a.train", "ls@v2.train"]


@pytest.mark.parametrize("entry, message", [
    ("{root}/nowhere", r"'.*/nowhere': '.*/nowhere': no such directory$"),
    ("{root}/a/dataset.json", r"not a directory"),
    ("https://host/ls960", r"no such directory; the index \(dataset.json\) must be in a local directory"),
    ("C:\\data\\ls", r"'C:\\\\data\\\\ls': no such directory$"),  # not cut at the drive's ':'
    ("C:/data/ls:dev", r"'C:/data/ls': no such directory$"),  # DIR:SPLIT, cut at the last ':' only
    ("{root}/a:dev.x", r"'.*/a:dev.x': no such directory"),  # not a split name: the whole is the path
    ("{root}/a@0", r"the weight must be a finite number > 0, got '0'"),
    ("{root}/a@-1", r"the weight must be a finite number > 0, got '-1'"),
    ("{root}/a@nan", r"the weight must be a finite number > 0"),
    ("{root}/a@heavy", r"'heavy' after the last '@' is not a weight, and '.*/a@heavy' is not a directory"),
    ("", r"not a DIR\[:SPLIT\]\[@WEIGHT\] string"),
    ({"split": "train"}, r"'shards' \(the prepared directory\) is required"),
    ({"shards": "{root}/a", "weight": "x"}, r"weight 'x' is not a number"),
    ({"shards": "{root}/a", "weight": True}, r"weight True is not a number"),
    ({"shards": "{root}/a", "split": "a b"}, r"split 'a b' is not a split name"),
    ({"shards": "{root}/a", "wieght": 2}, r"unknown key\(s\) \['wieght'\]; known: shards, split, weight, url_prefix"),
])
def test_parse_refusals(corpora, entry, message):
    if isinstance(entry, dict):
        entry = {k: v.format(root=corpora) if isinstance(v, str) else v for k, v in entry.items()}
    else:
        entry = entry.format(root=corpora)
    with pytest.raises(ValueError, match=r"^data\.train entry .*" + message):
        parse_mix([entry])


def test_parse_refuses_the_same_split_twice(corpora, monkeypatch):
    monkeypatch.chdir(corpora)
    with pytest.raises(ValueError, match=r"entries 'a' and './a:train@2' name the same split \(.*/a:train\)"):
        parse_mix(["a", "./a:train@2"])
    with pytest.raises(ValueError, match="no corpus given"):
        parse_mix([])
    assert len(parse_mix(["a", "a:dev"])) == 2


def test_read_mix_refusals(corpora, tmp_path):
    a, b, d, e = (str(corpora / n) for n in "abde")
    with pytest.raises(ValueError, match=r"^data.train entry '.*': .*dataset.json: no dataset index; run `ds-w2v prepare`"):
        read_mix(parse_mix([a, str(tmp_path)]))
    with pytest.raises(ValueError, match=r"^data.train entry '.*/b:nope': .*no split 'nope'; known splits: clean$"):
        read_mix(parse_mix([a, f"{b}:nope"]))
    with pytest.raises(ValueError, match=r"^data.train: '.*/d' has a different vocabulary from '.*/a' "
                                         r"\(tokens in one only: \['a'\]\); a mix must share one$"):
        read_mix(parse_mix([a, d]))
    with pytest.raises(ValueError, match=r"'.*/e' has a different label set from '.*/a' \(\['sad', 'calm'\] vs"):
        read_mix(parse_mix([a, e]))
    assert len(read_mix(parse_mix([a, d, e]), check_targets=False)) == 3  # pretraining reads neither
    # a classification mix reads only the label sets: another vocabulary is no objection, and a
    # corpus without labels is named as such (not "a different vocabulary")
    import shutil

    bare = tmp_path / "bare"  # d without a label set (as `prepare --format dir` writes one)
    shutil.copytree(d, bare)
    index = json.loads((bare / "dataset.json").read_text())
    index["labels"] = None
    (bare / "dataset.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"^data.train: '.*/bare' has no label set, where '.*/e' has one: an "
                                         r"unlabelled corpus cannot train this head \(pretraining takes it\)$"):
        read_mix(parse_mix([e, str(bare)]), check_targets=("label set",))
    assert len(read_mix(parse_mix([a, d]), check_targets=("label set",))) == 2  # another vocabulary: no objection
    # one plain prefix over two directories whose shards have the same names: the same URLs
    with pytest.raises(ValueError, match=r"entries '.*/a' and '.*/d' both read /store/train-000000.tar"):
        read_mix(parse_mix([a, d]), "/store/", check_targets=False)
    indexes = read_mix(parse_mix([a, {"shards": d, "url_prefix": "/store/d/"}]), check_targets=False)
    assert indexes[1][0].urls == ("/store/d/train-000000.tar",)


# -- the draw ------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_draw_shares_follow_the_temperature(corpora, alpha):
    sources = read_mix(parse_mix(_entries(corpora)))
    seconds = np.array([index.total_s for index, _ in sources])
    weights = np.array([w for _, w in sources])
    p = np.array(mix_probabilities(seconds, weights, alpha))
    expected = (weights * seconds) ** alpha
    assert p == pytest.approx(expected / expected.sum(), rel=1e-12)
    n = 2000
    shares = np.bincount(draw_sources(7, p, 0, n), minlength=3) / n
    assert shares == pytest.approx(p, abs=0.03)  # ~3 standard deviations of a share at n = 2000
    # a pure function of (seed, i): any window is the same slice of the whole
    assert np.array_equal(draw_sources(7, p, 1500, 500), draw_sources(7, p, 0, n)[1500:])
    assert not np.array_equal(draw_sources(8, p, 0, 50), draw_sources(7, p, 0, 50))


def test_temperature_flattens_towards_small_corpora():
    p1, p05, p0 = (mix_probabilities([100.0, 900.0], [1, 1], alpha) for alpha in (1.0, 0.5, 0.0))
    assert p1 == pytest.approx((0.1, 0.9)) and p05 == pytest.approx((0.25, 0.75)) and p0 == pytest.approx((0.5, 0.5))
    assert mix_probabilities([3.6e9, 3.6e3], [1, 1], 1.0)[1] == pytest.approx(1e-6)  # no overflow in logs
    with pytest.raises(ValueError, match="mix_alpha .* must be a finite number >= 0"):
        mix_probabilities([1.0], [1.0], -0.5)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_loader_takes_the_drawn_sources(corpora, alpha):
    loader = _loader(corpora, alpha)
    n = 48
    got = [_source(b) for _, b in zip(range(n), loader)]
    drawn = draw_sources(0, loader.probabilities, 0, n)
    assert got == [loader.names[k] for k in drawn]
    counts = np.bincount(drawn, minlength=3)
    assert loader.source_batches == counts.tolist() and loader.batches == n
    assert counts / n == pytest.approx(loader.probabilities, abs=0.2)  # a few dozen batches: loose
    stats = loader.stats
    assert stats.num_batches == n == sum(s.num_batches for s in loader.source_stats.values())
    figures = loader.source_figures()
    assert figures["data/mix/other/batches"] == counts[2]
    assert figures["data/mix/other/share"] == pytest.approx(counts[2] / n)
    assert figures["data/mix/clean/p"] == loader.probabilities[1]


# -- ranks, epochs, resume -----------------------------------------------------------------------
def test_two_ranks_take_the_same_batches_from_each_source(corpora):
    ranks = [_loader(corpora, rank=r, world_size=2) for r in range(2)]
    assert [len(sub) for sub in ranks[0].loaders] == [len(sub) for sub in ranks[1].loaders]
    runs = [[(_source(b), b.ids) for _, b in zip(range(30), loader)] for loader in ranks]
    assert [s for s, _ in runs[0]] == [s for s, _ in runs[1]]  # the same source for every batch index
    assert ranks[0].source_batches == ranks[1].source_batches
    for name in ranks[0].names:  # each rank its own share of each source
        assert [ids for s, ids in runs[0] if s == name] != [ids for s, ids in runs[1] if s == name]


def test_each_source_streams_its_own_epochs(corpora):
    """The batches a mix takes from source k are exactly those of that source's own loader
    (seed + k), epoch after epoch: a source rolls over when its epoch ends, whatever the others do."""
    loader = _loader(corpora)
    n = 60
    mixed = [(_source(b), b.ids) for _, b in zip(range(n), loader)]
    lens = [len(sub) for sub in loader.loaders]
    assert len(set(lens)) == 3 and len(loader) == sum(lens)
    for k, (name, (index, _)) in enumerate(zip(loader.names, read_mix(parse_mix(_entries(corpora))))):
        alone = StreamingLoader.from_split(index, StreamConfig(kind="finetune", batch_s=BATCH_S, shuffle_buffer=16,
                                                               seed=k), rank=0, world_size=1)
        taken = [ids for s, ids in mixed if s == name]
        expected = []
        while len(expected) < len(taken):
            expected += [b.ids for b in alone]
        assert taken == expected[: len(taken)]
        assert loader.loaders[k].epoch == len(taken) // lens[k]  # rolled over on its own
    assert len({sub.epoch for sub in loader.loaders}) > 1
    assert loader.epoch == n // len(loader)


@pytest.mark.parametrize("kind, num_workers, k, n", [("finetune", 0, 17, 45), ("pretrain", 0, 29, 45),
                                                     ("finetune", 1, 9, 20)])
def test_resume_is_bit_exact(corpora, kind, num_workers, k, n):
    """Mid-epoch everywhere (k = 17), right after a source's last batch of its epoch (k = 29: the
    saved state names its next epoch; pretraining crops), and with DataLoader workers."""
    whole = _take(iter(_loader(corpora, kind=kind, num_workers=num_workers)), n)
    first = _loader(corpora, kind=kind, num_workers=num_workers)
    assert _take(iter(first), k) == whole[:k]
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON, as in a checkpoint
    assert state["batches"] == k and len(state["loaders"]) == 3
    at_boundary = [(sub.epoch, sub.batches_in_epoch) == (st["epoch"] - 1, len(sub))
                   for sub, st in zip(first.loaders, state["loaders"])]
    assert any(at_boundary) == (k == 29)
    resumed = _loader(corpora, kind=kind, num_workers=num_workers)
    resumed.load_state_dict(state)
    assert resumed.source_batches == first.source_batches
    assert _take(iter(resumed), n - k) == whole[k:]


def test_resume_through_the_batch_feed(corpora):
    """BatchFeed (the trainer's feed, prefetching one ahead) over a mix: the saved position is the
    one of the batches handed out, and a resume from it continues bit-exact."""
    n, k = 30, 11
    whole = _take(BatchFeed(_loader(corpora), "cpu", prefetch=True), n)
    feed = BatchFeed(_loader(corpora), "cpu", prefetch=True)
    assert _take(feed, k) == whole[:k]
    state, epoch = feed.state_dict(), feed.epoch
    assert state["batches"] == k and epoch == k // len(feed.loader)
    again = BatchFeed(_loader(corpora), "cpu", prefetch=True)
    again.load_state_dict(state)
    assert _take(again, n - k) == whole[k:]
    feed.load_state_dict(state)  # the same feed, rewound: its read-ahead batch is dropped
    assert _take(feed, 5) == whole[k:k + 5]


def test_state_refusals(corpora, caplog):
    loader = _loader(corpora)
    _take(iter(loader), 5)
    state = loader.state_dict()
    with pytest.raises(ValueError, match=r"does not match this mix \(seed: saved 0, now 3\)"):
        MixedLoader.from_entries(_entries(corpora), StreamConfig(kind="finetune", batch_s=BATCH_S, shuffle_buffer=16,
                                                                 seed=3), rank=0, world_size=1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"probabilities: saved \[0\.\d+, .*\], now"):
        _loader(corpora, alpha=0.5).load_state_dict(state)
    single = StreamingLoader.from_split(read_split(corpora / "a", "train"), StreamConfig(batch_s=BATCH_S),
                                        rank=0, world_size=1).state_dict()
    with pytest.raises(ValueError, match=r"single-corpus stream; this loader mixes 3 \(train, clean, other\)"):
        _loader(corpora).load_state_dict(single)
    # a corpus added to a run: strict refuses; otherwise the others resume and the new one starts
    wider = MixedLoader.from_entries([*_entries(corpora), f"{corpora / 'a'}:dev"], StreamConfig(
        kind="finetune", batch_s=BATCH_S, shuffle_buffer=16), rank=0, world_size=1)
    with pytest.raises(ValueError, match=r"sources: saved \['train', 'clean', 'other'\], "
                                         r"now \['train', 'clean', 'other', 'dev'\]"):
        wider.load_state_dict(state)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.mix"):
        wider.load_state_dict(state, strict=False)
    assert "data mix changed" in caplog.text
    assert wider.batches == 5 and wider.source_batches == [*loader.source_batches, 0]


def test_loader_refusals(corpora):
    sources = read_mix(parse_mix(_entries(corpora)))
    with pytest.raises(ValueError, match="a mix is a training stream"):
        MixedLoader(sources, StreamConfig(loop=False), rank=0, world_size=1)
    with pytest.raises(ValueError, match="need as many unique names"):
        MixedLoader(sources, StreamConfig(), names=["x", "x", "y"], rank=0, world_size=1)
    assert MixedLoader(sources[:1] * 2, StreamConfig(), rank=0, world_size=1).names == ["train#0", "train#1"]


# -- LibriSpeech's three train splits as one 960 h set ------------------------------------------
def test_librispeech_train_splits_as_one_mix(tmp_path, prep_build):
    """``prepare --format librispeech`` on the LibriSpeech/ root writes each split under its name on
    disk (``train-clean-100``, ...); the three train splits of one directory then mix."""
    from ds_w2v.data.prepare import prepare_corpus

    splits = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean")
    prep_build.librispeech(tmp_path, splits=splits)
    out = tmp_path / "ls"
    index = prepare_corpus("librispeech", tmp_path / "LibriSpeech", out)
    assert sorted(index["splits"]) == sorted(splits)
    entries = [f"{out}:train-clean-100", f"{out}:train-clean-360", f"{out}:train-other-500"]
    loader = MixedLoader.from_entries(entries, StreamConfig(kind="finetune", batch_s=1.0, shuffle_buffer=0),
                                      rank=0, world_size=1)
    assert loader.names == ["train-clean-100", "train-clean-360", "train-other-500"]
    assert loader.probabilities == pytest.approx((1 / 3,) * 3)  # the fixture's splits hold the same audio
    speakers: dict[str, set[str]] = {name: set() for name in loader.names}
    for _, batch in zip(range(12), loader):
        speakers[_source_ls(batch)] |= {i.split("-")[0] for i in batch.ids}
    # the fixture gives the split number s the speakers 100 + 10 s and 101 + 10 s
    for s, name in enumerate(splits[:3]):
        assert speakers[name] and speakers[name] <= {str(100 + 10 * s), str(101 + 10 * s)}
    assert loader.source_batches == np.bincount(draw_sources(0, loader.probabilities, 0, 12), minlength=3).tolist()


def _source_ls(batch) -> str:
    """The LibriSpeech split of a batch, from its records' source paths (``.../<split>/<spk>/...``)."""
    splits = {Path(m["source"]).parts[-4] for m in batch.meta}
    assert len(splits) == 1, splits
    return splits.pop()
