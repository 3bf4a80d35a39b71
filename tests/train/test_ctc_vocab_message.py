"""Starting CTC fine-tuning from a model whose vocabulary is not the data's: the one-line refusal
says which symbols differ (missing, extra, or the same ones in another order), not only that the
counts are, which for two 32-symbol English vocabularies say nothing."""
from __future__ import annotations

import string
from types import SimpleNamespace

import pytest

from ds_w2v.text import SPECIAL_TOKENS, CharVocab
from ds_w2v.train.tasks.ctc import CTCTask

# 32 symbols, as the default English character vocabulary and fairseq's dict.ltr.txt have
ENGLISH = [*SPECIAL_TOKENS, *string.ascii_uppercase, "'"]


def refusal(model_tokens: list[str], data_tokens: list[str]) -> str:
    task = CTCTask.__new__(CTCTask)  # only its vocabulary and where it came from are read
    task.vocab = CharVocab(data_tokens)
    task.vocab_source = lambda: "shards/vocab.json"
    with pytest.raises(ValueError) as e:
        task.check_model(SimpleNamespace(vocab=CharVocab(model_tokens)), "wav2vec_small_960h.pt")
    text = str(e.value)
    assert "\n" not in text and text.startswith("model.init: wav2vec_small_960h.pt's vocabulary (32 symbols) differs "
                                                "from the data's (32 symbols in shards/vocab.json): ")
    return text.split("shards/vocab.json): ", 1)[1]


def test_the_same_symbols_in_another_order():
    data = list(ENGLISH)
    model = list(ENGLISH)
    model[5], model[9] = model[9], model[5]  # fairseq's frequency order, say: E before A
    assert refusal(model, data) == ("same symbols in another order (2 ids differ, first id 5: 'E' in "
                                    "wav2vec_small_960h.pt, 'A' in the data)")


def test_symbols_only_one_side_has():
    data = [*ENGLISH[:-1], "É"]  # an accented corpus without the apostrophe
    assert refusal(ENGLISH, data) == "wav2vec_small_960h.pt lacks 'É'; the data lacks \"'\""


def test_many_differences_name_five_and_count_the_rest():
    data = [*SPECIAL_TOKENS, *"абвгдежзийклмнопрстуфхцчшщъ"]
    assert refusal(ENGLISH, data) == ("wav2vec_small_960h.pt lacks 'а', 'б', 'в', 'г', 'д' and 22 more; "
                                      "the data lacks 'A', 'B', 'C', 'D', 'E' and 22 more")
