"""Question sources: the built-in `arith` generator, or a JSONL or Parquet file of question/answer rows.

Column names are settings (`question_column`, `answer_column`: GSM8K has question/answer, MATH
problem/solution). The reference answer is read from the answer field by `answer_format`: GSM8K's worked
solution ends `#### 72`; MATH's solution holds the answer in its last `\\boxed{…}`. A bad row (not JSON, not
an object, a missing or non-string field, no answer where the format needs one) is skipped and counted; the
count is reported once as a warning event by the caller.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .tasks import arith

HELD_OUT_SEED = 987_654_321


@dataclass
class Dataset:
    name: str
    train: list[dict] = field(default_factory=list)   # empty for generated tasks
    held_out: list[dict] = field(default_factory=list)
    bad_rows: int = 0
    generated: bool = False

    def batch(self, rng: random.Random, n: int) -> list[dict]:
        if self.generated:
            rows = []
            held = {r["question"] for r in self.held_out}
            while len(rows) < n:
                q = arith.random_expression(rng)
                if q not in held:
                    rows.append({"question": q, "answer": str(arith.evaluate(arith.parse(q)))})
            return rows
        return [self.train[rng.randrange(len(self.train))] for _ in range(n)]


def extract_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{…}` (or `\\fbox{…}`), braces balanced; None if there is none or it
    is not closed."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def reference_answer(field_text: str, answer_format: str = "plain") -> str | None:
    """The answer to check against, read from a dataset's answer field; None when the format finds none."""
    text = field_text.strip()
    fmt = answer_format
    if fmt == "auto":
        fmt = "gsm8k" if arith.ANSWER_MARKER in text else "math" if ("\\boxed" in text or "\\fbox" in text) else "plain"
    if fmt == "gsm8k":
        if arith.ANSWER_MARKER not in text:
            return None
        got = text.rsplit(arith.ANSWER_MARKER, 1)[1].strip().replace(",", "")
    elif fmt == "math":
        got = extract_boxed(text)
    else:
        got = text
    return got or None


def _clean_row(obj, question_column: str, answer_column: str, answer_format: str) -> dict | None:
    if not isinstance(obj, dict):
        return None
    q, a = obj.get(question_column), obj.get(answer_column)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = str(a)
    if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
        return None
    ref = reference_answer(a, answer_format)
    return None if ref is None else {"question": q, "answer": ref}


def _collect(objs, question_column: str, answer_column: str, answer_format: str) -> tuple[list[dict], int]:
    """The clean rows of `objs` (decoded records; None for one that did not decode) and how many were bad."""
    rows, bad = [], 0
    for obj in objs:
        row = None if obj is None else _clean_row(obj, question_column, answer_column, answer_format)
        if row is None:
            bad += 1
        else:
            rows.append(row)
    return rows, bad


def _json_lines(f):
    for line in f:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield None


def load_jsonl_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                    answer_format: str = "plain") -> tuple[list[dict], int]:
    """Rows with string question and answer (numbers are accepted as answers); bad rows counted."""
    with Path(path).open("r", encoding="utf-8", errors="replace") as f:
        return _collect(_json_lines(f), question_column, answer_column, answer_format)


def load_parquet_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                      answer_format: str = "plain") -> tuple[list[dict], int]:
    """The same rows from a Parquet file (read with pyarrow). A missing column is an error naming it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("setting 'task': reading Parquet needs the pyarrow package "
                         "(pip install -r trainer/requirements.txt)") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise ValueError(f"setting 'task': {path} is not a readable Parquet file: {e}") from None
    for key, col in (("question_column", question_column), ("answer_column", answer_column)):
        if col not in table.column_names:
            raise ValueError(f"setting '{key}': {path} has no column {col!r} (columns: "
                             f"{', '.join(table.column_names)})")
    qs = table.column(question_column).to_pylist()
    answers = table.column(answer_column).to_pylist()
    objs = ({question_column: q, answer_column: a} for q, a in zip(qs, answers))
    return _collect(objs, question_column, answer_column, answer_format)


def load_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
              answer_format: str = "plain") -> tuple[list[dict], int]:
    """JSONL or Parquet by the file's extension (.parquet / .pq; anything else is read as JSONL)."""
    reader = load_parquet_rows if Path(path).suffix.lower() in (".parquet", ".pq") else load_jsonl_rows
    return reader(path, question_column, answer_column, answer_format)


def load(task: str, eval_size: int, seed: int, question_column: str = "question", answer_column: str = "answer",
         answer_format: str = "plain") -> Dataset:
    if task == "arith":
        return Dataset("arith", held_out=arith.make_split(HELD_OUT_SEED, eval_size), generated=True)
    path = Path(task)
    if not path.is_file():
        raise FileNotFoundError(f"setting 'task': {task!r} is neither a built-in task (arith) nor a JSONL or "
                                "Parquet file")
    rows, bad = load_rows(path, question_column, answer_column, answer_format)
    if len(rows) < 2:
        raise ValueError(f"setting 'task': {task} has {len(rows)} usable rows ({bad} bad); need at least 2")
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    n_eval = min(eval_size, max(1, len(rows) // 10))
    return Dataset(path.stem, train=rows[n_eval:], held_out=rows[:n_eval], bad_rows=bad)
