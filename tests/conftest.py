"""The whole suite: DeepSpeed's accelerator is pinned to the CPU before any test imports
DeepSpeed (it chooses once per process, at import: CUDA where torch sees a GPU), so that the
in-process trainers of the CPU tests (``device=cpu``, gloo) keep their engines on the CPU on a GPU
machine too. The GPU tests (``tests/gpu``, ``-m gpu``) run their DeepSpeed trainers in
subprocesses with their own environment."""
import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")


import pytest  # noqa: E402  (after the accelerator is pinned)


@pytest.fixture(scope="session")
def small_timit_shards(tmp_path_factory):
    """A synthesised TIMIT-layout corpus (30 speakers x 5 sentences), prepared; read only."""
    from ds_w2v.cli import main as cli

    root = tmp_path_factory.mktemp("small_timit")
    assert cli(["synth", "timit", "--out", str(root / "T"), "--speakers", "30", "--sentences-per-speaker", "5",
                "--workers", "2"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "T"), "--out", str(root / "shards"), "--workers", "2",
                "--no-progress"]) == 0
    return root / "shards"
