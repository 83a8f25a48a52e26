"""Evaluation as the paper reports it: greedy accuracy, pass@k and maj@k over n sampled completions.

- **pass@k** — the unbiased estimator 1 − C(n−c, k)/C(n, k) of "at least one of k samples is right" from n ≥ k
  samples of which c are right (1 when n − c < k), as in HumanEval and lighteval.
- **maj@k** — the most frequent extracted answer among k samples is right. From n ≥ k samples it is estimated the
  same way as pass@k: the exact mean over all C(n, k) subsets of k samples. Samples with no extractable answer do
  not vote (a subset where none votes is wrong). Ties are split evenly: a subset whose top count is shared by t
  answers scores (number of right answers among them) / t — the expected value of breaking the tie uniformly at
  random, so the number is deterministic and does not depend on the order of the samples.

An answer's vote key (`vote_key`) is the `####` marker's value, else the last `\\boxed{…}`, else the last number,
with numbers compared by value (`42`, `42.0` and `4,2`… see `_normalise`). A key's correctness is the task
checker's verdict on its first sample (with the built-in `number` checker all samples of a key agree).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from . import answers, sft

DEFAULT_K = (1, 4, 8, 16)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c right (HumanEval's estimator)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(keys: list[str | None], correct: list[bool], k: int) -> float:
    """Mean over all k-subsets of the n samples of "the majority answer is right" (ties split evenly, samples
    whose key is None do not vote). `correct[i]` is sample i's verdict; a key takes its first sample's."""
    n = len(keys)
    if len(correct) != n or not 1 <= k <= n:
        raise ValueError(f"maj@k needs 1 ≤ k ≤ n and one verdict per sample; got n={n}, k={k}")
    counts = Counter(key for key in keys if key is not None)
    verdict: dict[str, bool] = {}
    for key, ok in zip(keys, correct):
        if key is not None:
            verdict.setdefault(key, bool(ok))
    silent = n - sum(counts.values())
    total = 0.0
    for key, m in counts.items():
        if not verdict[key]:
            continue
        others = [c for other, c in counts.items() if other != key]
        for x in range(1, min(m, k) + 1):  # x samples of the right key in the subset, all others below or tied
            total += math.comb(m, x) * _others_weight(others, silent, k - x, x)
    return total / math.comb(n, k)


def _others_weight(others: list[int], silent: int, size: int, x: int) -> float:
    """Σ over ways to pick `size` samples from the other keys (each key at most x times) and the silent samples,
    of 1/(1 + number of other keys picked exactly x times)."""
    ways: dict[tuple[int, int], int] = {(0, 0): 1}  # (samples picked, keys tied at x) -> number of ways
    for m in others:
        nxt: dict[tuple[int, int], int] = {}
        for (s, t), w in ways.items():
            for j in range(0, min(m, x, size - s) + 1):
                key = (s + j, t + (j == x))
                nxt[key] = nxt.get(key, 0) + w * math.comb(m, j)
        ways = nxt
    return sum(w * math.comb(silent, size - s) / (1 + t) for (s, t), w in ways.items() if size - s <= silent)


def _normalise(text: str) -> str:
    t = text.strip().replace(",", "").rstrip(".").strip()
    try:
        v = float(t)
    except ValueError:
        return t
    return str(int(v)) if v.is_integer() else repr(v)


def vote_key(completion: str) -> str | None:
    """The answer a completion gives, normalised for voting; None when it gives none."""
    got = answers.marked(completion)
    if got is None:
        got = answers.boxed(completion)
    if got is None:
        got = answers.last_number(completion)
    return None if got is None or not got.strip() else _normalise(got)


@dataclass
class Report:
    """One evaluation: greedy accuracy, and when samples were drawn pass@k / maj@k at `temperature`."""

    accuracy: float
    n: int
    samples: int = 0
    temperature: float | None = None
    pass_at: dict[int, float] = field(default_factory=dict)
    maj_at: dict[int, float] = field(default_factory=dict)
    greedy_texts: list[str] = field(default_factory=list)
    greedy_correct: list[bool] = field(default_factory=list)  # per question, in the rows' order

    def fields(self) -> dict:
        """The eval event's / `grpo eval` output's fields (JSON: k as a string key)."""
        out: dict = {"accuracy": self.accuracy, "n": self.n}
        if self.samples:
            out.update(samples=self.samples, temperature=self.temperature,
                       pass_at_k={str(k): v for k, v in self.pass_at.items()},
                       maj_at_k={str(k): v for k, v in self.maj_at.items()})
        return out

    def metrics(self) -> dict[str, float]:
        """The metrics-row columns: eval/accuracy, eval/pass@k, eval/maj@k."""
        row = {"eval/accuracy": self.accuracy}
        row.update({f"eval/pass@{k}": v for k, v in self.pass_at.items()})
        row.update({f"eval/maj@{k}": v for k, v in self.maj_at.items()})
        return row


def sampled_metrics(texts: list[list[str]], answers: list[str], check, ks: tuple[int, ...]
                    ) -> tuple[dict[int, float], dict[int, float]]:
    """pass@k and maj@k (means over questions) from n completions per question; k > n is left out."""
    n = len(texts[0]) if texts else 0
    usable = [k for k in ks if k <= n]
    pass_sum = dict.fromkeys(usable, 0.0)
    maj_sum = dict.fromkeys(usable, 0.0)
    for group, answer in zip(texts, answers):
        correct = [bool(check(t, answer)) for t in group]
        keys = [vote_key(t) for t in group]
        c = sum(correct)
        for k in usable:
            pass_sum[k] += pass_at_k(n, c, k)
            maj_sum[k] += maj_at_k(keys, correct, k)
    q = max(1, len(texts))
    return {k: v / q for k, v in pass_sum.items()}, {k: v / q for k, v in maj_sum.items()}


Stopped = sft.Stopped


@torch.no_grad()
def evaluate(model, tokenizer, rows: list[dict], max_new_tokens: int, *, prompt_fn, check, engine=None,
             samples: int = 0, ks: tuple[int, ...] = DEFAULT_K, temperature: float = 1.0, top_p: float = 1.0,
             generator: torch.Generator | None = None, batch_size: int = 256, should_stop=None) -> Report:
    """Greedy accuracy on `rows`, and with `samples` = n > 0 also pass@k and maj@k from n completions per
    question sampled at `temperature` (k ≤ n). `should_stop()` is asked between batches: when true the
    evaluation ends there with Stopped (no partial report)."""
    acc, greedy = sft.greedy_accuracy(model, tokenizer, rows, max_new_tokens, batch_size=batch_size,
                                      prompt_fn=prompt_fn, check=check, engine=engine, should_stop=should_stop)
    report = Report(accuracy=acc, n=len(rows), greedy_texts=greedy,
                    greedy_correct=[bool(check(t, r["answer"])) for t, r in zip(greedy, rows)])
    if samples <= 0 or not rows:
        return report
    prompts = sft.encode_many(tokenizer, [prompt_fn(r["question"]) for r in rows])
    flat = sft.complete(model, tokenizer, [p for p in prompts for _ in range(samples)], max_new_tokens,
                        temperature=temperature, top_p=top_p, generator=generator, engine=engine,
                        batch_size=max(1, batch_size // samples) * samples, should_stop=should_stop)
    texts = [flat[i * samples: (i + 1) * samples] for i in range(len(rows))]
    report.samples, report.temperature = samples, temperature
    report.pass_at, report.maj_at = sampled_metrics(texts, [r["answer"] for r in rows], check, ks)
    return report
