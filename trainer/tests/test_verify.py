"""Answer checking on the answers that trip checkers up."""

import pytest

from grpo import verify
from grpo.rewards import Rewarder
from grpo.tasks import ArithTask, FileTask

# (completion, reference answer, right?) — judged by math-verify
TRICKY = [
    ("The answer is \\boxed{0.5}", "\\frac{1}{2}", True),            # decimal vs fraction
    ("so it is \\boxed{\\dfrac{1}{2}}", "0.5", True),               # \dfrac
    ("She earned 72 dollars.", "72", True),                         # last number in prose
    ("72.00", "72", True),                                          # trailing zeros
    ("The total is 1,000 dollars.", "1000", True),                  # thousands separator
    ("x = 5", "5", True),                                           # an equation's right-hand side
    ("\\boxed{5}. Check: 3+4=7", "5", True),                        # the boxed answer wins over later numbers
    ("$\\sqrt{2}/2$", "\\frac{\\sqrt{2}}{2}", True),                # equivalent radicals
    ("$(1, 2]$", "(1,2]", True),                                    # intervals
    ("$[1,2]$", "(1,2]", False),                                    # ... whose brackets matter
    ("$\\{2, 1\\}$", "\\{1,2\\}", True),                            # sets are unordered
    ("$(x+1)^2$", "x^2+2x+1", True),                                # symbolic equality
    ("the answer is -3", "3", False),                               # sign
    ("the answer is -3", "-3", True),
    ("3.14159", "\\pi", False),                                     # an approximation is not π
    ("\\boxed{0.333}", "1/3", False),                               # nor is a rounded third
    ("3 + 4 = 7, no wait: 8", "7", False),                          # the final answer counts
    ("I don't know", "2", False),                                   # no answer at all
    ("Step 1: 10 + 62 = 72\n#### 72", "72", True),                  # GSM8K's marker
    ("#### 1,000.", "1000", True),                                  # marker with separator and period
    ("#### 71\nThe other answer is 72", "72", False),               # the marker wins over a later number
    ("#### 3.5", "7/2", True),
    ("\\boxed{\\text{blue}}", "blue", True),                        # a word answer
    ("\\boxed{red}", "blue", False),
    ("\\boxed{10\\%}", "10\\%", True),                              # percentages
]


@pytest.mark.parametrize("completion,answer,right", TRICKY)
def test_math_verify_on_tricky_answers(completion, answer, right):
    assert verify.math_verify_matches(completion, answer) is right


@pytest.mark.parametrize("completion,answer,right", [
    ("3+4=7\n#### 7", "7", True), ("#### -12", "-12", True), ("#### 12", "-12", False),
    ("so 1,000", "1000", True), ("it is 72.0", "72", True), ("no number", "3", False),
    ("#### 5\n", "6", False), ("2+2=4, then 5", "4", False),
])
def test_number_checker(completion, answer, right):
    assert verify.checker("number")(completion, answer) is right


def test_auto_picks_number_for_arith_and_math_verify_for_datasets():
    assert verify.resolve("auto", ArithTask.verifier) == "number"
    assert verify.resolve("auto", FileTask.verifier) == "math_verify"
    assert verify.resolve("number", FileTask.verifier) == "number"
    with pytest.raises(ValueError, match="verifier"):
        verify.checker("nonsense")


def test_rewarder_uses_the_chosen_verifier():
    comps, answers = ["\\boxed{\\frac{1}{2}}", "#### 0.5", "0.25"], ["0.5"] * 3
    assert Rewarder("math_verify")(["q"] * 3, comps, answers).rewards == [1.0, 1.0, 0.0]
    # the number convention sees "2" as the last number of \frac{1}{2}
    assert Rewarder("number")(["q"] * 3, comps, answers).rewards == [0.0, 1.0, 0.0]
