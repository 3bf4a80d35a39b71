"""Where ``read_split`` says the shards are: next to dataset.json, through a URL prefix or a
template, as URLs named by the index; and the prefixes and URLs it refuses, before any read."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from ds_w2v.data import StreamConfig, StreamingLoader, read_split
from ds_w2v.data.index import URL_SCHEMES, url_prefix_problem
from ds_w2v.data.stream import NoUsableData

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import write_split  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index")
    write_split(out, "train", [[1.0] * 4, [1.5] * 3, [2.0] * 2])
    return out


def _with_entries(src: Path, dst: Path, names: list[str]) -> Path:
    """A copy of ``src``'s dataset.json whose train split names ``names`` (stats kept per shard)."""
    index = json.loads((src / "dataset.json").read_text())
    index["splits"]["train"]["shards"] = names
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "dataset.json").write_text(json.dumps(index))
    return dst


def test_url_schemes_are_those_webdataset_opens():
    from webdataset.gopen import gopen_schemes

    assert set(URL_SCHEMES) == (set(gopen_schemes) - {"__default__"}) | {"file"}
    assert "s3" not in URL_SCHEMES  # S3 needs a pipe: command (the refusal below says which)


@pytest.mark.parametrize("prefix, url", [
    ("https://host/ls960/", "https://host/ls960/train-000001.tar"),
    ("gs://bucket/ls960/", "gs://bucket/ls960/train-000001.tar"),
    ("pipe:aws s3 cp s3://bucket/ls960/{shard} -", "pipe:aws s3 cp s3://bucket/ls960/train-000001.tar -"),
    ("pipe:gsutil cat gs://bucket/ls960/{shard}", "pipe:gsutil cat gs://bucket/ls960/train-000001.tar"),
    ("pipe:curl -sfL https://host/ls960/{shard} | cat", "pipe:curl -sfL https://host/ls960/train-000001.tar | cat"),
    ("pipe:awk '{print}' /x/{shard}", "pipe:awk '{print}' /x/train-000001.tar"),  # other braces stay
    ("/mnt/fast/ls960/", "/mnt/fast/ls960/train-000001.tar"),
])
def test_a_prefix_or_template_places_every_shard(shards, prefix, url):
    split = read_split(shards, "train", prefix)
    assert split.urls[1] == url
    assert split.names == ("train-000000.tar", "train-000001.tar", "train-000002.tar")
    assert split.shard_seconds == read_split(shards, "train").shard_seconds  # the index is the same


def test_without_a_prefix_shards_are_next_to_the_index(shards):
    assert read_split(shards, "train").urls == tuple(str(shards / n) for n in read_split(shards, "train").names)
    assert read_split(shards, "train", "").urls == read_split(shards, "train").urls  # "" = no prefix


def test_index_entries_that_are_urls_or_absolute_paths_are_used_as_they_are(shards, tmp_path):
    names = ["https://mirror/train-000000.tar", str(shards / "train-000001.tar"), "train-000002.tar"]
    index_dir = _with_entries(shards, tmp_path / "idx", names)
    assert read_split(index_dir, "train").urls == (names[0], names[1], str(index_dir / "train-000002.tar"))
    assert read_split(index_dir, "train", "pipe:cat /elsewhere/{shard}").urls == (
        names[0], names[1], "pipe:cat /elsewhere/train-000002.tar")


@pytest.mark.parametrize("prefix, why", [
    ("pipe:cat /data/ls960/", r"pipe: command must say where the shard's name goes with \{shard\}"),
    ("https://host/ls960", r"plain prefix must end with '/'"),
    ("/mnt/ls960", r"plain prefix must end with '/'"),
    ("s3://bucket/ls960/", r"webdataset cannot open s3: URLs .* pipe:aws s3 cp s3://bucket/ls960/\{shard\} -"),
    ("az://container/{shard}", r"webdataset cannot open az: URLs"),
])
def test_bad_prefixes_are_refused_before_any_read(shards, prefix, why):
    assert url_prefix_problem(prefix) is not None
    with pytest.raises(ValueError, match=rf"shard URL prefix .*: .*{why}"):
        read_split(shards, "train", prefix)


def test_bad_index_entries_are_refused_naming_the_index(shards, tmp_path):
    index_dir = _with_entries(shards, tmp_path / "s3", ["s3://bucket/train-000000.tar", "b.tar", "c.tar"])
    with pytest.raises(ValueError, match=r"s3/dataset.json: split 'train', shard 's3://bucket/train-000000.tar': "
                                         r"webdataset cannot open s3: URLs"):
        read_split(index_dir, "train")
    # a name that a shell would expand or split never goes into a pipe: command
    index_dir = _with_entries(shards, tmp_path / "shell", ["a.tar", "b; rm -rf x.tar", "c.tar"])
    read_split(index_dir, "train")  # as a local path it is only a file name
    with pytest.raises(ValueError, match=r"shard 'b; rm -rf x.tar': not pasted into the shell command"):
        read_split(index_dir, "train", "pipe:cat /x/{shard}")


def test_shards_stream_the_same_through_a_pipe_template(shards):
    cfg = StreamConfig(kind="finetune", batch_s=4.0, shuffle_buffer=4, seed=3)
    local = StreamingLoader.from_split(read_split(shards, "train"), cfg, rank=0, world_size=1)
    piped = StreamingLoader.from_split(read_split(shards, "train", f"pipe:cat {shards}/{{shard}}"), cfg,
                                       rank=0, world_size=1)
    a, b = list(local), list(piped)
    assert [x.ids for x in a] == [x.ids for x in b] and len(a) == len(local)
    assert all((x.audio == y.audio).all() for x, y in zip(a, b))
    assert all(u.startswith("pipe:cat ") for u in piped.urls) and not piped.stats.skipped


def test_unreachable_shards_are_counted_apart_from_damaged_ones(shards, tmp_path, caplog):
    (tmp_path / "cut.tar").write_bytes((shards / "train-000000.tar").read_bytes()[:3000])
    urls = [f"pipe:cat {tmp_path}/missing.tar",  # the command fails before writing a byte
            f"pipe:cat {tmp_path}/cut.tar",  # bytes come, then the tar ends: damage, not unreachable
            "pipe:true",  # a command that succeeds but writes nothing
            f"pipe:cat {shards}/train-000001.tar"]
    cfg = StreamConfig(kind="finetune", batch_s=4.0, loop=False, shuffle_buffer=0, shard_shuffle=False)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.stream"):
        loader = StreamingLoader(urls, cfg)
        ids = [i for b in loader for i in b.ids]
    assert ids == [f"train_s1_{j}" for j in range(3)]
    s = loader.stats
    assert s.skipped["unreachable_shard"] == 2 and s.skipped["bad_shard"] == 1
    assert s.unreachable_shards == {urls[0], urls[2]} and s.bad_shards == {urls[1]}
    assert s.num_corrupt == sum(s.skipped.values()) - 2  # unreachable is not corruption
    lines = [r.getMessage() for r in caplog.records if "(unreachable_shard)" in r.getMessage()]
    assert len(lines) == 2
    assert "missing.tar" in lines[0] and "exited with status 1 before the shard's first sample" in lines[0]
    assert "pipe:true" in lines[1] and "exited with status 0 but wrote nothing" in lines[1]


def test_a_stream_of_unreachable_shards_fails_naming_them(tmp_path):
    urls = [f"pipe:cat {tmp_path}/nowhere/{i}.tar" for i in range(3)]
    loader = StreamingLoader(urls, StreamConfig(batch_s=4.0), num_batches=5)
    with pytest.raises(NoUsableData, match=r"none of its 3 shard\(s\) could be read \(unreachable_shard; the first, "
                                           r"pipe:cat .*/nowhere/\d.tar: the command exited with status 1"):
        list(loader)
