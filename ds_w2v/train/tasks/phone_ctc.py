"""CTC fine-tuning on TIMIT's phones (``data.target=phones``), TIMIT's own metric: the head's
vocabulary is the fixed 39-phone set of Lee & Hon (1989) that ``prepare`` folds the 61 TIMIT
phones to (``data/sources/timit.py``), the targets are each record's ``phones``, and the dev
phone error rate chooses the best checkpoint.

PER = the edit distance (substitutions + deletions + insertions) between the greedy CTC phone
sequence and the reference's, summed over the split, over the reference's phones. wav2vec 2.0
(Baevski et al. 2020, §5.3, Table 3) reports 7.4 / 8.3 dev / test PER for LARGE pretrained on
LibriSpeech 960 h.

    ds-w2v finetune-ctc --recipe finetune_ctc_tiny data.shards=demo_data/shards/timit data.target=phones
"""
from __future__ import annotations

from ...data.shard_format import read_index
from ...data.sources.timit import PHONES_39
from ...text import SPECIAL_TOKENS, CharVocab, edit_errors
from .ctc import CTCTask

# the 39 phones (PHONES_39: the values of timit.PHONE_FOLD_39) after the specials, so that id 0
# is the CTC blank as in every CTC model here; the other specials are never targets
PHONE_VOCAB = CharVocab([*SPECIAL_TOKENS, *PHONES_39])
# the prepare formats whose records carry phones (dataset.json's source.format): TIMIT's .PHN
PHONE_FORMATS = ("timit",)


class PhoneCTCTask(CTCTask):
    name = "phone_ctc"
    target = "phones"
    best_metrics = {"per": False, "loss": False}
    best_metric = "per"
    command = None  # finetune-ctc data.target=phones (tasks.select_task)

    def __init__(self, config, index):
        super().__init__(config, index)
        # the loaders' module, not imported where a config loads
        from ...data.mix_sources import parse_mix

        self.phone_ids = self.vocab.to_dict()
        d = config.data
        corpora = [d.shards, *(s.dir for s in parse_mix(d.train, d.train_split))] if d.train else [d.shards]
        for shards in dict.fromkeys(corpora):  # what the index says, before any process group starts
            fmt = read_index(shards)["source"].get("format")
            if fmt not in PHONE_FORMATS:
                raise ValueError(f"data.target=phones: {shards} holds {fmt} shards, whose records carry no phones "
                                 f"(only {', '.join(PHONE_FORMATS)} shards do, from the .PHN files)")

    @classmethod
    def owns(cls, model):
        return getattr(model, "vocab", None) == PHONE_VOCAB

    def data_vocab(self, index):
        return PHONE_VOCAB

    def vocab_source(self):
        return f"the phone set of data.target=phones: the {len(PHONES_39)} folded TIMIT phones and the specials"

    def references(self, batch):
        """Each record's phones, space-separated (as ``decode`` writes a phone vocabulary's output);
        a record without phones, or with a phone outside the 39, is refused naming the utterance
        (a TIMIT copy without .PHN files gets past the index check above, not past this)."""
        refs = []
        for uid, record in zip(batch.ids, batch.meta):
            phones = record.get("phones")
            if phones is None:
                raise ValueError(f"data.target=phones: utterance {uid} has no phones (its record's phones is null: "
                                 "prepared without a .PHN file)")
            unknown = sorted(set(phones) - set(self.phone_ids))
            if unknown:
                raise ValueError(f"data.target=phones: utterance {uid} has phones {unknown} outside the 39 folded "
                                 "TIMIT phones")
            refs.append(" ".join(phones))
        return refs

    def encode(self, reference):
        return [self.phone_ids[p] for p in reference.split()]

    def error_sums(self, refs, hyps):
        import jiwer

        # one phone a word: jiwer's word edit distance over the space-separated phones
        phone_err, phones = edit_errors(refs, hyps, jiwer.process_words)
        return {"phone_err": phone_err, "phones": phones}

    def eval_keys(self):
        return ["loss", "n", "phone_err", "phones"]

    def eval_metrics(self, sums):
        return {"loss": sums["loss"] / max(sums["n"], 1), "per": sums["phone_err"] / max(sums["phones"], 1)}
