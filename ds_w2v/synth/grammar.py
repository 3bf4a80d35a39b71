"""A seeded sentence grammar: TIMIT-like read sentences, 4-15 words, from compositional templates.

Why a grammar and not a fixed list: the TIMIT layout needs thousands of *distinct* sentences
(every SI sentence is read once, SX sentences by a few speakers each, and test sentences must
never occur in training) and an ASR demo needs a real vocabulary (~1,300 base words in
:mod:`ds_w2v.synth.lexicon`). About thirty templates (statements in several tenses, questions,
imperatives, subordinate and coordinated clauses) combined with noun phrases (determiner,
optional adjective, noun, number) give far more than 10^9 sentences, so rejecting duplicates
costs nothing.

Determinism: everything draws from one ``random.Random(seed)``; the same seed gives the same
sentences in the same order on every machine and Python 3 version.
"""
from __future__ import annotations

import random
from typing import Callable

from ds_w2v.synth import lexicon as lx

# The two TIMIT "dialect" sentences, read by every speaker (TIMIT SA1 / SA2). Readers usually
# exclude them because they are identical across speakers.
SA_SENTENCES = (
    "She had your dark suit in greasy wash water all year.",
    "Don't ask me to carry an oily rag like that.",
)

MIN_WORDS = 4
MAX_WORDS = 15

_PRONOUNS_SG = ("he", "she")
_PRONOUNS_PL = ("we", "they", "you")
_POSSESSIVES = ("my", "your", "his", "her", "our", "their")
_COUNTS = ("two", "three", "four", "five", "several", "many", "a few", "some")

# object kind -> (nouns, adjectives, verbs taking that object)
_OBJECTS = {
    "thing": (lx.THINGS, lx.ADJ_GENERAL + lx.ADJ_THING, lx.V_THING),
    "food": (lx.FOODS, lx.ADJ_FOOD, lx.V_FOOD),
    "person": (lx.PEOPLE, lx.ADJ_GENERAL, lx.V_PERSON),
    "animal": (lx.ANIMALS, lx.ADJ_GENERAL, lx.V_ANIMAL),
    "abstract": (lx.ABSTRACT, lx.ADJ_GENERAL, lx.V_ABSTRACT),
}
_OBJECT_WEIGHTS = (("thing", 5), ("food", 3), ("person", 3), ("animal", 2), ("abstract", 2))


class Grammar:
    """Draws sentences from templates; :meth:`sentence` returns one capitalised, punctuated."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self._templates: list[tuple[Callable[[], str], int]] = [
            (self._svo_past, 8), (self._svo_place, 6), (self._svo_time, 5), (self._future, 4),
            (self._progressive, 3), (self._question_did, 3), (self._question_wh, 3),
            (self._imperative, 3), (self._copula, 4), (self._reported, 3), (self._intrans, 5),
            (self._conditional, 3), (self._contrast, 3), (self._animal_place, 3),
            (self._there_was, 3), (self._habit, 3), (self._how_many, 2), (self._never_seen, 2),
            (self._asked_to, 3), (self._because, 3), (self._weather, 2), (self._on_day, 3),
            (self._whose, 1), (self._exclaim, 1), (self._cannot_find, 2), (self._neither, 1),
            (self._modal, 3), (self._two_objects, 3), (self._while, 2), (self._after, 2),
        ]
        self._weights = [w for _, w in self._templates]

    # -- building blocks ------------------------------------------------------------------
    def _c(self, seq):
        return self.rng.choice(seq)

    def _p(self, p: float) -> bool:
        return self.rng.random() < p

    def _kind(self) -> str:
        kinds, weights = zip(*_OBJECT_WEIGHTS)
        return self.rng.choices(kinds, weights)[0]

    def _np(self, nouns, adjectives=lx.ADJ_GENERAL, adj_p: float = 0.45, plural_p: float = 0.25) -> str:
        """Determiner + optional adjective + noun, singular or plural."""
        noun = self._c(nouns)
        adj = self._c(adjectives) if self._p(adj_p) else None
        if self._p(plural_p):
            head = " ".join(w for w in (adj, lx.plural(noun)) if w)
            det = self.rng.choices(("the", "these", "those", "some", "poss", "count"), (5, 1, 1, 2, 2, 2))[0]
            det = self._c(_POSSESSIVES) if det == "poss" else self._c(_COUNTS) if det == "count" else det
            return f"{det} {head}"
        head = " ".join(w for w in (adj, noun) if w)
        det = self.rng.choices(("the", "a", "poss", "this", "that"), (6, 4, 3, 1, 1))[0]
        det = lx.article(head) if det == "a" else self._c(_POSSESSIVES) if det == "poss" else det
        return f"{det} {head}"

    def _person(self, adj_p: float = 0.3) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self._c(lx.NAMES_MALE + lx.NAMES_FEMALE)
        if r < 0.45:
            return self._c(_PRONOUNS_SG + _PRONOUNS_PL + ("I",))
        return self._np(lx.PEOPLE, adj_p=adj_p, plural_p=0.2)

    def _subject_sg(self) -> str:
        """A singular third-person subject, for present-tense agreement."""
        r = self.rng.random()
        if r < 0.35:
            return self._c(lx.NAMES_MALE + lx.NAMES_FEMALE)
        if r < 0.5:
            return self._c(_PRONOUNS_SG)
        return self._np(lx.PEOPLE, adj_p=0.3, plural_p=0.0)

    def _object(self, kind: str | None = None) -> tuple[str, str]:
        """(verb base form, object noun phrase) that go together."""
        kind = kind or self._kind()
        nouns, adjectives, verbs = _OBJECTS[kind]
        return self._c(verbs), self._np(nouns, adjectives)

    def _place(self) -> str:
        prep = self.rng.choices(("in", "at", "near", "behind", "outside", "inside", "across", "past", "to"),
                                (6, 3, 2, 1, 1, 1, 1, 1, 2))[0]
        return f"{prep} the {self._c(lx.PLACES)}"

    def _time(self) -> str:
        r = self.rng.random()
        if r < 0.7:
            return self._c(lx.TIMES)
        if r < 0.85:
            return "on " + self._c(lx.WEEKDAYS)
        return "in " + self._c(lx.MONTHS)

    # -- templates (each returns a sentence without its final punctuation) ----------------
    def _svo_past(self):
        verb, obj = self._object()
        adv = " " + self._c(lx.ADV) if self._p(0.3) else ""
        return f"{self._person()} {lx.past(verb)} {obj}{adv}"

    def _svo_place(self):
        verb, obj = self._object()
        return f"{self._person()} {lx.past(verb)} {obj} {self._place()}"

    def _svo_time(self):
        verb, obj = self._object()
        return f"{self._person()} {lx.past(verb)} {obj} {self._time()}"

    def _future(self):
        verb, obj = self._object()
        tail = " " + self._time() if self._p(0.5) else ""
        return f"{self._person()} will {verb} {obj}{tail}"

    def _progressive(self):
        verb, obj = self._object()
        subj = self._subject_sg()
        return f"{subj} was {lx.gerund(verb)} {obj} when {self._np(lx.PEOPLE, plural_p=0)} {lx.past(self._c(lx.V_INTRANS))}"

    def _question_did(self):
        verb, obj = self._object()
        tail = " " + self._time() if self._p(0.4) else ""
        return f"did {self._person()} {verb} {obj}{tail}?"

    def _question_wh(self):
        verb, obj = self._object()
        wh = self._c(("why", "where", "when", "how"))
        aux = self._c(("did", "will", "should", "could", "can"))
        return f"{wh} {aux} {self._person()} {verb} {obj}?"

    def _imperative(self):
        verb, obj = self._object(self._c(("thing", "food", "animal")))
        lead = self._c(("please ", "don't ", "never ", "always ", "", "carefully "))
        tail = self.rng.choices(("", " " + self._time(), " " + self._place(), " before " + self._c(("lunch", "dinner", "dark", "noon"))), (2, 2, 2, 1))[0]
        return f"{lead}{verb} {obj}{tail}" + ("!" if self._p(0.3) else "")

    def _copula(self):
        kind = self._c(("thing", "food", "animal"))
        nouns, adjectives, _ = _OBJECTS[kind]
        noun = self._c(nouns)
        be = self._c(("is", "was", "seems", "looked", "felt"))
        degree = self._c(("", "", "very ", "rather ", "too ", "quite "))
        return f"the {noun} {self._place()} {be} {degree}{self._c(adjectives)}"

    def _reported(self):
        kind = self._c(("thing", "food", "abstract"))
        nouns, adjectives, _ = _OBJECTS[kind]
        verb = self._c(("said", "thought", "knew", "claimed", "guessed", "heard", "felt"))
        return f"{self._person()} {verb} that the {self._c(nouns)} was too {self._c(adjectives)}"

    def _intrans(self):
        adv = self._c(lx.ADV)
        tail = " " + self._place() if self._p(0.5) else ""
        subj = self._np(lx.PEOPLE, plural_p=0.3) if self._p(0.6) else self._person()
        return f"{subj} {lx.past(self._c(lx.V_INTRANS))} {adv}{tail}"

    def _conditional(self):
        weather = self._c(("rain", "snow", "wind", "storm", "fog"))
        stops = self._c(("stops", "starts", "gets worse", "clears", "returns"))
        verb, obj = self._object()
        subj = self._c(("we", "they", "I", "you")) if self._p(0.5) else self._c(lx.NAMES_MALE + lx.NAMES_FEMALE)
        return f"if the {weather} {stops}, {subj} will {verb} {obj}"

    def _contrast(self):
        verb, obj = self._object()
        who = self._c(("nobody", "no one", "everyone", "somebody")) if self._p(0.5) else self._person(adj_p=0)
        return f"{self._person(adj_p=0)} {lx.past(verb)} {obj}, but {who} {lx.past(self._c(lx.V_INTRANS))}"

    def _animal_place(self):
        prep = self._c(("under", "behind", "beside", "near", "on top of", "inside", "next to"))
        animal = self._np(lx.ANIMALS, plural_p=0.3)
        return f"{animal} {lx.past(self._c(lx.V_INTRANS))} {prep} the {self._c(lx.ADJ_THING + ('',))} {self._c(lx.THINGS)}".replace("  ", " ")

    def _there_was(self):
        noun = self._c(lx.THINGS + lx.ANIMALS + lx.PEOPLE)
        adj = self._c(lx.ADJ_GENERAL)
        return f"there was {lx.article(adj)} {adj} {noun} {self._place()}"

    def _habit(self):
        adj, food = self._c(lx.ADJ_FOOD), lx.plural(self._c(lx.FOODS))
        meal = self._c(("breakfast", "lunch", "dinner", "supper", "dessert"))
        freq = self._c(("always", "often", "never", "usually", "sometimes", "rarely"))
        verb = self._c(("eat", "cook", "bake", "buy", "order", "serve", "want"))
        return f"{self._subject_sg()} {freq} {lx.third_person(verb)} {adj} {food} for {meal}"

    def _how_many(self):
        kind = self._c(("thing", "food", "animal"))
        nouns, _, verbs = _OBJECTS[kind]
        return f"how many {lx.plural(self._c(nouns))} did {self._person(adj_p=0)} {self._c(verbs)}?"

    def _never_seen(self):
        kind = self._c(("thing", "animal", "food"))
        nouns, adjectives, _ = _OBJECTS[kind]
        adj = self._c(adjectives)
        return f"{self._person(adj_p=0)} had never seen such {lx.article(adj)} {adj} {self._c(nouns)}"

    def _asked_to(self):
        verb, obj = self._object()
        asked = self._c(("asked", "told", "begged", "reminded", "invited", "wanted"))
        return f"{self._person(adj_p=0)} {asked} {self._c(lx.NAMES_MALE + lx.NAMES_FEMALE)} to {verb} {obj}"

    def _because(self):
        verb, obj = self._object("thing")
        adj = self._c(lx.ADJ_GENERAL + lx.ADJ_THING)
        return f"{self._person(adj_p=0)} {lx.past(verb)} {obj} because it was {adj}"

    def _weather(self):
        weather = self._c(lx.WEATHER)
        verb = self._c(("kept", "forced", "drove", "sent"))
        where = "inside" if verb == "kept" else self._c(("indoors", "home", "away"))
        return f"the {self._c(('heavy', 'sudden', 'bitter', 'strange', 'endless'))} {weather} {verb} {self._person(adj_p=0)} {where} {self._time()}"

    def _on_day(self):
        verb, obj = self._object()
        when = self._c(("on " + self._c(lx.WEEKDAYS), "in " + self._c(lx.MONTHS), "last " + self._c(lx.WEEKDAYS)))
        return f"{when}, {self._person()} {lx.past(verb)} {obj}"

    def _whose(self):
        noun = self._c(lx.THINGS)
        adj = self._c(lx.ADJ_THING)
        return f"whose {adj} {noun} is {self._place()}?"

    def _exclaim(self):
        kind = self._c(("thing", "animal", "food"))
        nouns, adjectives, _ = _OBJECTS[kind]
        adj = self._c(adjectives)
        return f"what {lx.article(adj)} {adj} {self._c(nouns)} {self._c(('this is', 'that was', 'you have', 'we found'))}!"

    def _cannot_find(self):
        nouns, adjectives, _ = _OBJECTS["thing"]
        return f"{self._person(adj_p=0)} can't find the {self._c(adjectives)} {self._c(nouns)} anywhere"

    def _neither(self):
        verb, obj = self._object()
        a, b = self._c(lx.NAMES_MALE), self._c(lx.NAMES_FEMALE)
        return f"neither {a} nor {b} {lx.past(verb)} {obj}"

    def _modal(self):
        verb, obj = self._object()
        modal = self._c(("should", "could", "might", "must", "would", "can", "may"))
        neg = " not" if self._p(0.25) else ""
        return f"{self._person()} {modal}{neg} {verb} {obj} {self._c((self._time(), self._place(), self._c(lx.ADV)))}"

    def _two_objects(self):
        kind = self._c(("thing", "food"))
        nouns, adjectives, verbs = _OBJECTS[kind]
        return f"{self._person(adj_p=0)} {lx.past(self._c(verbs))} the {self._c(nouns)} and the {self._c(adjectives)} {self._c(nouns)}"

    def _while(self):
        verb, obj = self._object()
        return f"while {self._person(adj_p=0)} {lx.past(self._c(lx.V_INTRANS))}, {self._person(adj_p=0)} {lx.past(verb)} {obj}"

    def _after(self):
        verb, obj = self._object()
        return f"after the {self._c(lx.PLACES)} closed, {self._person(adj_p=0)} {lx.past(verb)} {obj}"

    # -- public -----------------------------------------------------------------------------
    def sentence(self) -> str:
        """One sentence of MIN_WORDS..MAX_WORDS words, capitalised and punctuated."""
        while True:
            template = self.rng.choices(self._templates, self._weights)[0][0]
            body = template().strip()
            if body[-1] not in "?!":
                body += "."
            body = " ".join(body.split())
            words = body.split()
            if MIN_WORDS <= len(words) <= MAX_WORDS:
                return body[0].upper() + body[1:]


def distinct_sentences(count: int, seed: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``count`` distinct sentences (none in ``exclude``, none an SA sentence), deterministic in ``seed``."""
    grammar = Grammar(seed)
    seen = set(exclude) | set(SA_SENTENCES)
    out: list[str] = []
    attempts = 0
    while len(out) < count:
        s = grammar.sentence()
        attempts += 1
        if s not in seen:
            seen.add(s)
            out.append(s)
        elif attempts > 50 * count + 1000:  # cannot happen at sane sizes; guards a silent hang
            raise RuntimeError(f"grammar produced only {len(out)} distinct sentences of {count}")
    return out


def words_of(text: str) -> list[str]:
    """The words of a sentence as TIMIT .WRD writes them: lower case, no punctuation."""
    out = []
    for token in text.split():
        w = token.strip(".,!?;:\"").lower()
        if w:
            out.append(w)
    return out
