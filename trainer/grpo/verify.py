"""Answer checkers: is a completion's final answer the reference answer?

- `number`: the value after GSM8K's `####` marker, else the last number in the completion, compared
  numerically (commas dropped). Exact and fast; the built-in `arith` task's convention.
- `math_verify`: Hugging Face's `math-verify` (the checker TRL's accuracy reward uses). Both sides are parsed
  to sympy — LaTeX (`\\frac`, `\\sqrt`, `\\boxed{…}`, sets, intervals, percentages) or plain expressions — and
  compared for mathematical equality. A completion using the `####` convention is judged on the marker's
  value; otherwise math-verify extracts the answer itself (a `\\boxed{…}` first, else the last expression).

`checker(name, fallback)` returns a function (completion, answer) -> bool. A checker never raises: a completion
it cannot parse is wrong. Where the answer sits in the text is `answers.py`'s business.

The fallback (setting `answer_fallback`): a completion with neither the `####` marker nor a `\\boxed{…}` has
no stated answer. With the fallback on, `number` takes its last number and `math_verify` its last expression;
off, it is wrong. A task that defines a marker (arith, GSM8K-style data) turns it off under `auto`: there a
completion cut off mid-solution, whose last intermediate number happens to be the answer, would otherwise earn
outcome reward for an answer it never gave. Tasks without a marker keep it on: their completions may state the
answer in plain words, and the last number or expression is the best reading of them.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Callable

from . import answers

NAMES = ("number", "math_verify")


def available(name: str) -> bool:
    if name == "math_verify":
        try:
            import math_verify  # noqa: F401
        except ImportError:
            return False
    return name in NAMES


def resolve(setting: str, task_default: str) -> str:
    """The verifier to use: `auto` is the task's own (`Task.verifier`; `number` where math-verify is not
    installed), anything else must be available."""
    if setting == "auto":
        return task_default if available(task_default) else "number"
    if not available(setting):
        raise ValueError(f"setting 'verifier': {setting} needs the math-verify package "
                         "(pip install -r trainer/requirements.txt)")
    return setting


def fallback(setting: str, task) -> bool:
    """Whether a completion without a marked or boxed answer is read by its last number / expression."""
    if setting == "auto":
        return not getattr(task, "answer_marker", False)
    return setting == "on"


def stated(completion: str) -> bool:
    """The completion states its answer: after the `####` marker or in a box."""
    return answers.marked(completion) is not None or answers.boxed(completion) is not None


def checker(name: str, fallback: bool = True) -> Callable[[str, str], bool]:
    check = number_matches if name == "number" else math_verify_matches if name == "math_verify" else None
    if check is not None:
        return check if fallback else (lambda completion, answer: stated(completion) and check(completion, answer))
    raise ValueError(f"setting 'verifier': unknown verifier {name!r}; one of {', '.join(NAMES)}")


def number_matches(completion: str, answer: str) -> bool:
    """The `####` marker's value, else the last number in the completion (thousands separators allowed),
    compared numerically with the answer."""
    got = answers.marked(completion)
    if got is None:
        got = answers.last_number(completion)
    if got is None:
        return False
    try:
        return math.isclose(float(got), float(answer.replace(",", "")), rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return got.strip() == answer.strip()


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only the main thread may set
    return 5 if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def _parse_gold(answer: str) -> tuple:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    text = answer.strip()
    wrapped = text if text.startswith("$") or text.startswith("\\(") else f"${text}$"
    return tuple(parse(wrapped, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                       parsing_timeout=_timeout()))


def _parse_prediction(completion: str) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    marked = answers.marked(completion)
    text = marked if marked is not None else completion
    return parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
                 parsing_timeout=_timeout())


def math_verify_matches(completion: str, answer: str) -> bool:
    from math_verify import verify

    try:
        gold = list(_parse_gold(answer))
        if not gold:  # not mathematics (a word, a name): compare the marked or boxed text exactly
            return _plain_text_answer(completion) == answer.strip()
        pred = _parse_prediction(completion)
        return bool(pred) and bool(verify(gold, pred, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001 - a checker never takes the run down; unparseable means wrong
        return False


def _plain_text_answer(completion: str) -> str | None:
    marked = answers.marked(completion)
    return (marked if marked is not None else answers.boxed(completion) or "").strip() or None
