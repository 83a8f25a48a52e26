"""The built-in task `arith`: integer expressions over single digits, solved one operation per line.

An expression has `min_ops`–`max_ops` binary operations from + − × (settings `arith_min_ops`,
`arith_max_ops`; the embedded default trains on 2), operands 0–9, and is written with the minimal
parentheses under standard precedence and left associativity, e.g. ``(3+1)*3+4*1``. Its worked solution
reduces the expression tree one operation per line (left subtree first), then gives the answer after the
GSM8K-style marker ``####``::

    3+1=4
    4*3=12
    4*1=4
    12+4=16
    #### 16

Negative operands are written in parentheses (``5-(-2)=7``) so every step line has one operator.
SFT data can mix two behaviours the way instruction data does (settings `sft_direct_fraction`,
`sft_direct_weight`): a fraction of the targets are a direct answer (``#### 16``) with a larger loss weight,
the rest worked solutions. Greedy decoding then follows the weighted direct style while sampling often finds
the more accurate worked one: a start whose pass@k is high and greedy accuracy low, which GRPO can sharpen.

The outcome reward checks the final answer. The process reward checks each line: a step earns 1 when it
applies the right operator to two values that are available in the current expression (a sub-expression
whose operands are both already computed) with the right result; the answer line earns 1 when it is right.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .. import decontaminate
from ..answers import MARKER as ANSWER_MARKER
from ..answers import marked
from .base import Task

OPS = "+-*"
PREC = {"+": 1, "-": 1, "*": 2}
HELD_OUT_SEED = 987_654_321


@dataclass(frozen=True)
class Node:
    """A leaf (op is None, value set) or a binary operation."""

    op: str | None = None
    value: int = 0
    left: "Node | None" = None
    right: "Node | None" = None

    @property
    def is_leaf(self) -> bool:
        return self.op is None


def apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def evaluate(n: Node) -> int:
    return n.value if n.is_leaf else apply(n.op, evaluate(n.left), evaluate(n.right))


def render(n: Node) -> str:
    """Minimal parentheses: a child is wrapped when it binds looser than its parent, or when it is the
    right child of `-` at equal precedence (a−(b+c)); a+(b−c) and a·(b·c) need none."""
    if n.is_leaf:
        return str(n.value)
    p = PREC[n.op]
    left, right = render(n.left), render(n.right)
    if not n.left.is_leaf and PREC[n.left.op] < p:
        left = f"({left})"
    if not n.right.is_leaf and (PREC[n.right.op] < p or (PREC[n.right.op] == p and n.op == "-")):
        right = f"({right})"
    return f"{left}{n.op}{right}"


_TOKEN = re.compile(r"\d+|[-+*()]")


def parse(text: str) -> Node:
    """Parse an expression of non-negative integers with + − × and parentheses, left-associative."""
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != text.replace(" ", ""):
        raise ValueError(f"not an arithmetic expression: {text!r}")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"unexpected end of expression: {text!r}")
        pos += 1
        return tokens[pos - 1]

    def atom() -> Node:
        t = take()
        if t == "(":
            n = expr()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses: {text!r}")
            return n
        if not t.isdigit():
            raise ValueError(f"expected a number at {t!r}: {text!r}")
        return Node(value=int(t))

    def term() -> Node:
        n = atom()
        while peek() == "*":
            take()
            n = Node(op="*", left=n, right=atom())
        return n

    def expr() -> Node:
        n = term()
        while peek() in ("+", "-"):
            op = take()
            n = Node(op=op, left=n, right=term())
        return n

    tree = expr()
    if pos != len(tokens):
        raise ValueError(f"trailing input in expression: {text!r}")
    return tree


def random_expression(rng: random.Random, min_ops: int = 2, max_ops: int = 4) -> str:
    """A random tree with `min_ops`–`max_ops` operations, rendered minimally (the rendering is canonical: parse∘render
    gives the tree the solution follows)."""
    def build(k: int) -> Node:
        if k == 0:
            return Node(value=rng.randint(0, 9))
        left_ops = rng.randint(0, k - 1)
        return Node(op=rng.choice(OPS), left=build(left_ops), right=build(k - 1 - left_ops))

    return render(build(rng.randint(min_ops, max_ops)))


def _num(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


def solution_steps(tree: Node) -> list[tuple[str, int, int, int]]:
    """(op, a, b, result) for each operation, in post-order (left subtree first)."""
    steps: list[tuple[str, int, int, int]] = []

    def walk(n: Node) -> int:
        if n.is_leaf:
            return n.value
        a, b = walk(n.left), walk(n.right)
        r = apply(n.op, a, b)
        steps.append((n.op, a, b, r))
        return r

    walk(tree)
    return steps


def worked_solution(question: str) -> str:
    tree = parse(question)
    lines = [f"{_num(a)}{op}{_num(b)}={r}" for op, a, b, r in solution_steps(tree)]
    return "\n".join(lines + [f"{ANSWER_MARKER} {evaluate(tree)}"])


def direct_solution(question: str) -> str:
    """The answer alone, in the worked solution's answer format."""
    return f"{ANSWER_MARKER} {evaluate(parse(question))}"


# ------------------------------------------------------------------------------------------- rewards
_STEP = re.compile(r"^\s*(\(-\d+\)|-?\d+)\s*([-+*])\s*(\(-\d+\)|-?\d+)\s*=\s*(-?\d+)\s*$")


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _value(tok: str) -> int:
    return int(tok.strip("()"))


def _reduce(n: Node, op: str, a: int, b: int) -> tuple[Node, bool]:
    """Replace the first ready node `a op b` (both children leaves) with its value."""
    if n.is_leaf:
        return n, False
    if n.left.is_leaf and n.right.is_leaf:
        if n.op == op and n.left.value == a and n.right.value == b:
            return Node(value=apply(op, a, b)), True
        return n, False
    left, done = _reduce(n.left, op, a, b)
    if done:
        return Node(op=n.op, left=left, right=n.right), True
    right, done = _reduce(n.right, op, a, b)
    return Node(op=n.op, left=n.left, right=right), done


def process_rewards(question: str, completion: str) -> tuple[list[float], list[int]]:
    """Per-line rewards and, for each, the 0-based character index where the line ends (its newline, or
    the completion's last character for the final line). With a character tokenizer these are token
    indices. Lines that are empty are not steps."""
    tree = parse(question)
    answer = evaluate(tree)
    rewards: list[float] = []
    ends: list[int] = []
    start = 0
    for line in completion.split("\n"):
        end = start + len(line)  # index of the '\n' after the line (or one past the text)
        if line.strip():
            if line.strip().startswith(ANSWER_MARKER):
                ok = _integer(marked(line)) == answer
            else:
                m = _STEP.match(line)
                ok = False
                if m:
                    a, op, b, c = _value(m.group(1)), m.group(2), _value(m.group(3)), int(m.group(4))
                    if apply(op, a, b) == c:
                        tree, ok = _reduce(tree, op, a, b)
            rewards.append(1.0 if ok else 0.0)
            ends.append(min(end, len(completion) - 1))
        start = end + 1
    return rewards, ends


def make_split(seed: int, n: int, exclude: set[str] | None = None, min_ops: int = 2,
               max_ops: int = 4) -> list[dict]:
    """`n` distinct questions with answers, none in `exclude`. Raises when the distribution has fewer than
    `n` distinct questions outside `exclude` (1 operation: 300 questions)."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    rows = []
    misses = 0
    while len(rows) < n:
        q = random_expression(rng, min_ops, max_ops)
        if q in seen:
            misses += 1
            if misses > 100 * n + 10_000:
                raise ValueError(f"arith with {min_ops}–{max_ops} operations has too few distinct questions "
                                 f"for {n} held-out ones")
            continue
        misses = 0
        seen.add(q)
        rows.append({"question": q, "answer": str(evaluate(parse(q)))})
    return rows


class ArithTask(Task):
    """The built-in task: fresh random expressions for training, a fixed held-out split (`HELD_OUT_SEED`, or
    the rows of the `held_out` setting's file) that training never draws — no generated question shares a
    10-gram with, or (short) equals, a held-out one — worked solutions for SFT, optionally mixed with direct
    answers, and a step checker for process supervision."""

    name = "arith"
    verifier = "number"  # integer answers: exact and fast
    answer_marker = True  # worked and direct solutions end in '#### N'

    def __init__(self, eval_size: int = 200, min_ops: int = 2, max_ops: int = 4, held_out: list[dict] | None = None,
                 direct_fraction: float = 0.0, direct_weight: float = 1.0):
        self.ops = (min_ops, max_ops)
        self.direct_fraction, self.direct_weight = direct_fraction, direct_weight
        self._held_out = held_out if held_out is not None else make_split(HELD_OUT_SEED, eval_size, min_ops=min_ops,
                                                                          max_ops=max_ops)
        self._index = decontaminate.Index.of(r["question"] for r in self._held_out)
        self.decontamination = {"checked": 0, "eval_questions": len(self._held_out), "matched": 0,
                                "action": "never generated", "n": decontaminate.N, "examples": []}

    @classmethod
    def from_settings(cls, settings, held_out: list[dict] | None = None) -> "ArithTask":
        return cls(settings.eval_size, settings.arith_min_ops, settings.arith_max_ops, held_out,
                   settings.sft_direct_fraction, settings.sft_direct_weight)

    def questions(self, rng: random.Random, n: int) -> list[dict]:
        rows = []
        while len(rows) < n:
            q = random_expression(rng, *self.ops)
            if not self._index.contaminated(q):
                rows.append({"question": q, "answer": str(evaluate(parse(q)))})
        return rows

    def held_out(self) -> list[dict]:
        return self._held_out

    def answer(self, question: str) -> str | None:
        try:
            return str(evaluate(parse(question)))
        except ValueError:
            return None

    def solution(self, question: str) -> str | None:
        return worked_solution(question)

    def sft_example(self, question: str, rng: random.Random) -> tuple[str, float] | None:
        """With probability `direct_fraction` the direct answer weighted `direct_weight`, else the worked
        solution weighted 1 (the module docstring says why)."""
        if self.direct_fraction > 0 and rng.random() < self.direct_fraction:
            return direct_solution(question), self.direct_weight
        return worked_solution(question), 1.0

    def steps(self, question: str, completion: str) -> tuple[list[float], list[int]]:
        return process_rewards(question, completion)
