import random

import pytest

from grpo.tasks import arith


@pytest.mark.parametrize("text,value", [("(3+1)*3+4*1", 16), ("2-3-2", -3), ("2-(3-2)", 1), ("2*3+4", 10),
                                        ("9-9*9", -72), ("(1+2)*(3+4)", 21)])
def test_parse_and_evaluate(text, value):
    assert arith.evaluate(arith.parse(text)) == value


def test_render_is_minimal_and_canonical():
    rng = random.Random(3)
    for _ in range(2000):
        q = arith.random_expression(rng)
        tree = arith.parse(q)
        assert arith.render(tree) == q  # parse∘render is the identity on generated questions
        assert 2 <= q.count("+") + q.count("-") + q.count("*") <= 4
        # every pair of parentheses is needed: removing it changes the value or the parse
        for i, ch in enumerate(q):
            if ch == "(":
                depth, j = 0, i
                for j in range(i, len(q)):
                    depth += {"(": 1, ")": -1}.get(q[j], 0)
                    if depth == 0:
                        break
                stripped = q[:i] + q[i + 1:j] + q[j + 1:]
                assert arith.render(arith.parse(stripped)) != q


def test_worked_solution_and_rewards():
    q = "(3+1)*3+4*1"
    sol = arith.worked_solution(q)
    assert sol == "3+1=4\n4*3=12\n4*1=4\n12+4=16\n#### 16"
    rewards, ends = arith.process_rewards(q, sol)
    assert rewards == [1.0] * 5
    assert [sol[e] for e in ends[:-1]] == ["\n"] * 4 and ends[-1] == len(sol) - 1


def test_negative_operands_are_parenthesised():
    sol = arith.worked_solution("2-3-2")
    assert sol == "2-3=-1\n(-1)-2=-3\n#### -3"
    assert arith.process_rewards("2-3-2", sol)[0] == [1.0, 1.0, 1.0]


def test_process_reward_checks_each_step():
    # precedence violated (3+4 is not available in 2*3+4), wrong arithmetic, then right steps
    rewards, _ = arith.process_rewards("2*3+4", "3+4=7\n2*3=5\n2*3=6\n6+4=10\n#### 10")
    assert rewards == [0.0, 0.0, 1.0, 1.0, 1.0]
    # an operand that is not available (9 never appears) earns nothing even if the arithmetic holds
    assert arith.process_rewards("2*3+4", "9+1=10\n#### 11")[0] == [0.0, 0.0]


def test_the_task_interface():
    task = arith.ArithTask(eval_size=20)
    held = {r["question"] for r in task.held_out()}
    assert len(held) == 20 and task.held_out() == arith.ArithTask(eval_size=20).held_out()  # fixed
    rows = task.questions(random.Random(0), 200)
    assert not held & {r["question"] for r in rows}  # training never draws a held-out question
    assert all(r["answer"] == task.answer(r["question"]) for r in rows)
    assert task.answer("hello") is None and task.has_solutions and task.has_steps and task.verifier == "number"
    assert task.solution("2-3-2").endswith("#### -3") and task.steps("2*3", "2*3=6\n#### 6") == ([1.0, 1.0], [5, 11])
    with pytest.raises(ValueError):
        task.steps("not arithmetic", "#### 1")


def test_splits_are_distinct_and_reproducible():
    a, b = arith.make_split(1, 300), arith.make_split(1, 300)
    assert a == b and len({r["question"] for r in a}) == 300
