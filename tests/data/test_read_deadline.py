"""Reads with a deadline (ds_w2v/data/deadline.py): a shard server that accepts the connection and
never answers, or a pipe: command that hangs, is skipped after ``read_timeout_s`` with a warning
and counted; the other shards go on. The servers are on loopback and bounded in time."""
from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from ds_w2v.data import StreamConfig, StreamingLoader
from ds_w2v.data.deadline import DeadlineReader, ReadTimeout

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import write_split  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deadline")
    write_split(out, "train", [[1.0] * 3, [1.5] * 2])
    return out


@pytest.fixture
def stalling_server():
    """http://127.0.0.1:PORT/: accepts every connection, reads the request, sends nothing; closed
    (and its connections) when the test ends, after at most 60 s."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    held, stop = [], threading.Event()

    def serve():
        end = time.time() + 60
        while not stop.is_set() and time.time() < end:
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            held.append(conn)  # never answered
        for c in held:
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(5)
    srv.close()


def _cfg(timeout_s):
    return StreamConfig(kind="finetune", batch_s=4.0, loop=False, shuffle_buffer=0, shard_shuffle=False,
                        read_timeout_s=timeout_s)


def test_a_server_that_accepts_and_stalls_is_skipped_and_the_rest_go_on(shards, stalling_server, caplog):
    urls = [f"{stalling_server}/train-000000.tar", str(shards / "train-000001.tar")]
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.stream"):
        loader = StreamingLoader(urls, _cfg(2.0))
        ids = [i for b in loader for i in b.ids]
    took = time.monotonic() - start
    assert ids == [f"train_s1_{j}" for j in range(2)]  # the reachable shard, whole
    assert loader.stats.skipped["unreachable_shard"] == 1 and loader.stats.unreachable_shards == {urls[0]}
    lines = [r.getMessage() for r in caplog.records if "(unreachable_shard)" in r.getMessage()]
    assert len(lines) == 1 and urls[0] in lines[0] and "sent nothing for 2 s (data.read_timeout_s)" in lines[0]
    assert took < 30  # the deadline, not curl's own limits, ended it (a correctness bound, not a speed goal)


def test_a_pipe_command_that_hangs_is_cut_off(shards):
    urls = ["pipe:sleep 30", str(shards / "train-000000.tar")]
    loader = StreamingLoader(urls, _cfg(1.0))
    ids = [i for b in loader for i in b.ids]
    assert ids == [f"train_s0_{j}" for j in range(3)]
    assert loader.stats.unreachable_shards == {"pipe:sleep 30"}


def test_a_shard_that_stalls_midway_is_counted_damaged(shards, tmp_path):
    # half the shard's bytes come, then nothing: the shard is skipped once (bad_shard once a whole
    # sample came out of it, else unreachable_shard) and the stream ends instead of hanging
    head = (shards / "train-000000.tar").read_bytes()
    urls = [f"pipe:head -c {len(head) // 2} {shards / 'train-000000.tar'}; sleep 30"]
    loader = StreamingLoader(urls, _cfg(1.0))
    ids = [i for b in loader for i in b.ids]
    assert set(ids) < {f"train_s0_{j}" for j in range(3)}  # at most what came before the stall
    assert sum(loader.stats.skipped.values()) == 1
    assert set(loader.stats.skipped) == ({"bad_shard"} if ids else {"unreachable_shard"})


def test_the_reader_passes_bytes_through_unchanged_and_raises_after_the_deadline():
    import io

    data = bytes(range(256)) * 9000
    r = DeadlineReader(io.BytesIO(data), 5.0)
    assert r.read(10) + r.read(3_000_000) + r.read() == data and r.read(5) == b""

    class Stalled:
        def read(self, n):
            time.sleep(3)
            return b""

        def close(self):
            pass

    with pytest.raises(ReadTimeout, match=r"sent nothing for 0.5 s"):
        DeadlineReader(Stalled(), 0.5).read(1)


def test_the_config_refuses_a_negative_deadline():
    with pytest.raises(ValueError, match=r"data.read_timeout_s must be >= 0"):
        _cfg(-1.0)
