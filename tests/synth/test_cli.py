"""``ds-w2v synth``: argument checking (one clear error line) and a small end-to-end run."""
import pytest

from ds_w2v import cli
from ds_w2v.commands import synth


def _main(argv):
    args = synth.build_parser("ds-w2v synth").parse_args(argv)
    return synth.main(args)


@pytest.mark.parametrize("argv, message", [
    (["timit", "--speakers", "10"], "--speakers must be >= 25"),
    (["timit", "--hours", "0"], "--hours must be > 0"),
    (["timit", "--sentences-per-speaker", "2"], "--sentences-per-speaker must be >= 3"),
    (["timit", "--workers", "0"], "--workers must be >= 1"),
    (["ravdess", "--actors", "1,x"], "--actors: cannot parse"),
    (["ravdess", "--actors", "20-30"], "actors must be in 1..24"),
])
def test_bad_arguments_raise_clear_value_errors(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        _main(argv + ["--out", str(tmp_path / "out")])


def test_refuses_non_empty_out(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        _main(["ravdess", "--out", str(tmp_path), "--actors", "1"])


def test_dispatcher_prints_one_error_line(tmp_path, capsys):
    assert cli.main(["synth", "timit", "--out", str(tmp_path / "t"), "--speakers", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ds-w2v synth: error: --speakers must be >= 25")


def test_ravdess_end_to_end_summary(tmp_path, capsys):
    out = tmp_path / "ravdess"
    assert cli.main(["synth", "ravdess", "--out", str(out), "--actors", "4", "--workers", "1"]) == 0
    assert len(list((out / "Actor_04").glob("03-01-*-04.wav"))) == 60
    summary = capsys.readouterr().out
    assert "60 audio files" in summary and "x real time" in summary
