"""Decontamination as DeepSeekMath §2 does it: a training question that shares a 10-gram with an evaluation
question is contaminated.

Text is normalised before matching: Unicode NFKC, lower case, then split into word tokens (runs of letters and
digits) and single symbols (``+ - * / = ( )`` …); sentence punctuation (``. , ; : ! ? " '``) is dropped, so
``What is 3+4?`` and ``what is 3 + 4`` are the same tokens while ``3+4`` and ``3*4`` stay different. A question
with fewer than n tokens (most arithmetic questions) has no n-gram; it matches an evaluation question only when
the two are identical after normalisation. A long training text that merely contains a short evaluation question
is not flagged (the paper's rule is about shared 10-grams).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

N = 10
_TOKEN = re.compile(r"\w+|[^\w\s]")
_DROPPED = set(".,;:!?\"'`")


def tokens(text: str) -> list[str]:
    """The normalised tokens of `text`."""
    norm = unicodedata.normalize("NFKC", text).lower()
    return [t for t in _TOKEN.findall(norm) if t not in _DROPPED]


def ngrams(toks: list[str], n: int = N) -> set[tuple[str, ...]]:
    return {tuple(toks[i: i + n]) for i in range(len(toks) - n + 1)}


@dataclass
class Index:
    """The evaluation questions' n-grams (and whole token sequences of the short ones)."""

    n: int = N
    grams: set[tuple[str, ...]] = field(default_factory=set)
    short: set[tuple[str, ...]] = field(default_factory=set)

    @classmethod
    def of(cls, questions, n: int = N) -> "Index":
        index = cls(n=n)
        for q in questions:
            index.add(q)
        return index

    def add(self, question: str) -> None:
        toks = tokens(question)
        if len(toks) < self.n:
            self.short.add(tuple(toks))
        else:
            self.grams |= ngrams(toks, self.n)

    def contaminated(self, question: str) -> bool:
        toks = tokens(question)
        if len(toks) < self.n:
            return tuple(toks) in self.short
        return any(g in self.grams for g in ngrams(toks, self.n))


@dataclass
class Report:
    """What a check found: the positions of contaminated training rows and a few of their questions."""

    checked: int
    eval_questions: int
    matched: list[int]

    def fields(self, questions: list[str], action: str) -> dict:
        """The `decontamination` event's fields (also `grpo decontaminate`'s output)."""
        return {"checked": self.checked, "eval_questions": self.eval_questions, "matched": len(self.matched),
                "action": action, "n": N, "examples": [questions[i] for i in self.matched[:3]]}


def check(train_questions: list[str], eval_questions: list[str], n: int = N) -> Report:
    index = Index.of(eval_questions, n)
    matched = [i for i, q in enumerate(train_questions) if index.contaminated(q)]
    return Report(checked=len(train_questions), eval_questions=len(eval_questions), matched=matched)
