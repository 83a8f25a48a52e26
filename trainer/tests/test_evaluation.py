"""pass@k and maj@k against brute-force enumeration of every k-subset of the n samples."""

import itertools
import math
import random
from collections import Counter

import pytest

from grpo import config, evaluation


def brute_pass(correct: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


def brute_maj(keys: list[str | None], correct: list[bool], k: int) -> float:
    """Majority over each subset; a tie among t keys scores (right keys among them) / t."""
    verdict = {}
    for key, ok in zip(keys, correct):
        if key is not None:
            verdict.setdefault(key, ok)
    subsets = list(itertools.combinations(range(len(keys)), k))
    total = 0.0
    for s in subsets:
        votes = Counter(keys[i] for i in s if keys[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        leaders = [key for key, c in votes.items() if c == top]
        total += sum(verdict[key] for key in leaders) / len(leaders)
    return total / len(subsets)


def test_pass_at_k_matches_enumeration():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 9)
        correct = [rng.random() < 0.4 for _ in range(n)]
        for k in range(1, n + 1):
            assert evaluation.pass_at_k(n, sum(correct), k) == pytest.approx(brute_pass(correct, k), abs=1e-12)


def test_pass_at_k_edges():
    assert evaluation.pass_at_k(16, 0, 8) == 0.0
    assert evaluation.pass_at_k(16, 9, 8) == 1.0  # n − c < k: every 8-subset holds a right sample
    assert evaluation.pass_at_k(16, 4, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        evaluation.pass_at_k(4, 1, 5)


def test_maj_at_k_matches_enumeration_with_ties_and_silent_samples():
    rng = random.Random(1)
    answers = ["7", "8", "9", "10", None]
    for _ in range(300):
        n = rng.randint(1, 9)
        keys = [rng.choice(answers) for _ in range(n)]
        correct = [key == "7" for key in keys]
        for k in range(1, n + 1):
            assert evaluation.maj_at_k(keys, correct, k) == pytest.approx(brute_maj(keys, correct, k), abs=1e-12)


def test_maj_at_k_two_right_keys_and_known_values():
    # two keys judged right (e.g. math-verify: "1/2" and "0.5"): a tie between them scores fully
    keys, correct = ["a", "b", "c", "c"], [True, True, False, False]
    for k in range(1, 5):
        assert evaluation.maj_at_k(keys, correct, k) == pytest.approx(brute_maj(keys, correct, k))
    # 3 right of 4, k = 2: subsets {r,r} win (3), {r,w} tie → 1/2 each (3): (3 + 1.5) / 6
    assert evaluation.maj_at_k(["5", "5", "5", "6"], [True, True, True, False], 2) == pytest.approx(4.5 / 6)
    assert evaluation.maj_at_k([None, None], [False, False], 1) == 0.0


def test_maj_differs_from_pass_where_rl_would_move_it():
    # a right answer that is sampled but outvoted: pass@4 is 1, maj@4 is 0
    keys = ["3", "4", "4", "4"]
    correct = [True, False, False, False]
    assert evaluation.pass_at_k(4, 1, 4) == 1.0
    assert evaluation.maj_at_k(keys, correct, 4) == 0.0


def test_vote_key_normalises_answers():
    assert evaluation.vote_key("2*3=6\n#### 6") == "6"
    assert evaluation.vote_key("#### 1,000.") == "1000"
    assert evaluation.vote_key("so 6.0 it is") == "6"
    assert evaluation.vote_key("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert evaluation.vote_key("no answer") is None


def test_sampled_metrics_means_over_questions_and_skips_large_k():
    from grpo.verify import number_matches

    texts = [["#### 1", "#### 2"], ["#### 5", "#### 5"]]
    pass_at, maj_at = evaluation.sampled_metrics(texts, ["1", "5"], number_matches, (1, 2, 4))
    assert set(pass_at) == {1, 2}  # k = 4 > n = 2 is left out
    assert pass_at[1] == pytest.approx((0.5 + 1.0) / 2)
    assert pass_at[2] == pytest.approx(1.0)
    assert maj_at[2] == pytest.approx((0.5 + 1.0) / 2)  # a 1-1 tie with one right key scores 1/2


def test_parse_ks():
    assert config.parse_ks("16,1, 4,8") == (1, 4, 8, 16)
    for bad in ("", "0", "a,b"):
        with pytest.raises(ValueError):
            config.parse_ks(bad)


def test_maj_at_k_is_fast_enough_for_spread_answers():
    # 16 samples, all different answers (the slowest shape for the subset count): exact and quick
    keys = [str(i) for i in range(16)]
    correct = [i == 0 for i in range(16)]
    assert evaluation.maj_at_k(keys, correct, 8) == pytest.approx(1 / 16)
    assert math.isclose(evaluation.maj_at_k(keys, correct, 16), 1 / 16)


def test_evaluate_samples_n_completions_per_question_with_a_real_model():
    import torch

    from grpo import models, prompts
    from grpo.verify import number_matches

    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    rows = [{"question": "1+2", "answer": "3"}, {"question": "2*3-1", "answer": "5"}, {"question": "9-9", "answer": "0"}]
    gen = torch.Generator().manual_seed(0)
    report = evaluation.evaluate(model, tok, rows, 6, prompt_fn=prompts.plain, check=number_matches, samples=4,
                                 ks=(1, 4, 8), temperature=1.0, generator=gen, batch_size=8)
    assert report.n == 3 and len(report.greedy_texts) == 3 and report.samples == 4
    assert set(report.pass_at) == set(report.maj_at) == {1, 4}  # k = 8 > 4 samples is left out
    assert all(0 <= v <= 1 for v in [*report.pass_at.values(), *report.maj_at.values()])
    assert report.pass_at[1] == report.maj_at[1]  # one sample: both are the sampled accuracy
    fields = report.fields()
    assert fields["pass_at_k"].keys() == {"1", "4"} and fields["temperature"] == 1.0
    assert set(report.metrics()) == {"eval/accuracy", "eval/pass@1", "eval/pass@4", "eval/maj@1", "eval/maj@4"}
    assert evaluation.evaluate(model, tok, rows, 6, prompt_fn=prompts.plain, check=number_matches).fields() \
        .keys() == {"accuracy", "n"}  # greedy only
