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


def test_a_truncated_arith_completion_without_the_marker_earns_no_outcome_reward():
    """Cut off mid-solution at an intermediate line that equals the answer: the answer was never given."""
    from grpo import rewards, verify
    from grpo.config import Config
    from grpo import tasks
    from grpo.tasks import arith

    task = tasks.load(Config())
    assert isinstance(task, arith.ArithTask) and verify.fallback("auto", task) is False
    question = "3*4+0"
    worked = arith.worked_solution(question)
    cut = worked.split("####")[0].rstrip()  # every step, no marker: its last number is the answer
    assert "####" not in cut and cut.endswith("=12")
    rewarder = rewards.Rewarder("number", task=task, fallback=verify.fallback("auto", task))
    assert rewarder([question, question], [cut, worked], ["12", "12"]).rewards == [0.0, 1.0]
    # the fallback as a setting: on reads the last number (the old behaviour), tasks without a marker default to it
    assert rewards.Rewarder("number", fallback=verify.fallback("on", task))([question], [cut], ["12"]).rewards == [1.0]
    assert verify.fallback("auto", object()) is True


def test_without_the_fallback_a_boxed_or_marked_answer_still_counts():
    from grpo import verify

    strict = verify.checker("number", fallback=False)
    assert strict("so #### 12", "12") and not strict("the answer is 12", "12")
    assert verify.checker("math_verify", fallback=False)("so \\boxed{12}", "12")
    assert not verify.checker("math_verify", fallback=False)("the answer is 12", "12")


def test_gsm8k_style_files_define_a_marker_and_plain_ones_do_not(tmp_path):
    import json

    from grpo.tasks.files import FileTask

    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text("".join(json.dumps({"question": f"q{i} {'x' * i}", "answer": f"work\n#### {i}"}) + "\n"
                           for i in range(30)))
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({"question": f"q{i} {'y' * i}", "answer": str(i)}) + "\n" for i in range(30)))
    marked, unmarked = FileTask(gsm), FileTask(plain)
    assert marked.answer_marker and not unmarked.answer_marker
    assert all("marked" not in r for r in marked.train + marked.held_out())
