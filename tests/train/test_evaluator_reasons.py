"""Why an evaluation scored fewer utterances than its index lists, in the units each count has:
an unreachable dev shard of 120 utterances is 120 utterances, not "1 damaged"."""
from ds_w2v.train.evaluator import _unscored_reasons


def test_reasons_count_utterances_and_shards_apart():
    counts = {"damaged": 2, "bad_shards": 1, "unreadable_shards": 1, "unreadable_utts": 120}
    assert _unscored_reasons(counts) == ["2 damaged utterance(s)", "1 damaged shard(s), their unread rest",
                                         "120 utterance(s) in 1 unreadable shard(s)"]
    assert _unscored_reasons({"damaged": 0, "bad_shards": 0, "unreadable_shards": 0, "unreadable_utts": 0}) == []
