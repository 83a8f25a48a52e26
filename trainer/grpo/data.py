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

from . import decontaminate
from .tasks import arith

HELD_OUT_SEED = 987_654_321


@dataclass
class Dataset:
    name: str
    train: list[dict] = field(default_factory=list)   # empty for generated tasks
    held_out: list[dict] = field(default_factory=list)
    bad_rows: int = 0
    generated: bool = False
    ops: tuple[int, int] = (2, 4)   # generated arith: operations per question (min, max)
    decontamination: dict = field(default_factory=dict)  # the check's findings (decontaminate.Report.fields)
    _index: decontaminate.Index | None = field(default=None, repr=False)

    def batch(self, rng: random.Random, n: int) -> list[dict]:
        """`n` training rows. A generated task never yields a question that shares a 10-gram with (or, short,
        equals) a held-out one: GRPO and SFT both draw from here."""
        if self.generated:
            rows = []
            if self._index is None:
                self._index = decontaminate.Index.of(r["question"] for r in self.held_out)
            while len(rows) < n:
                q = arith.random_expression(rng, *self.ops)
                if not self._index.contaminated(q):
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
         answer_format: str = "plain", ops: tuple[int, int] = (2, 4), held_out: str = "",
         decontaminate_action: str = "remove") -> Dataset:
    """The task's training rows and held-out rows: `held_out` names a file of evaluation rows (its first
    `eval_size`), else the held-out rows are generated (arith) or split from the task file. Training rows that
    share a 10-gram with a held-out question are removed (`decontaminate_action` remove) or only counted
    (report); the findings are in `Dataset.decontamination`."""
    held: list[dict] | None = None
    held_bad = 0
    if held_out:
        if not Path(held_out).is_file():
            raise FileNotFoundError(f"setting 'held_out': {held_out!r} is not a JSONL or Parquet file")
        held, held_bad = load_rows(held_out, question_column, answer_column, answer_format)
        if not held:
            raise ValueError(f"setting 'held_out': {held_out} has no usable rows ({held_bad} bad)")
        held = held[:eval_size]
    if task == "arith":
        rows = held if held is not None else arith.make_split(HELD_OUT_SEED, eval_size, min_ops=ops[0], max_ops=ops[1])
        return Dataset("arith", held_out=rows, generated=True, ops=ops, bad_rows=held_bad,
                       decontamination={"checked": 0, "eval_questions": len(rows), "matched": 0,
                                        "action": "never generated", "n": decontaminate.N, "examples": []})
    path = Path(task)
    if not path.is_file():
        raise FileNotFoundError(f"setting 'task': {task!r} is neither a built-in task (arith) nor a JSONL or "
                                "Parquet file")
    rows, bad = load_rows(path, question_column, answer_column, answer_format)
    if len(rows) < 2:
        raise ValueError(f"setting 'task': {task} has {len(rows)} usable rows ({bad} bad); need at least 2")
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    if held is None:
        n_eval = min(eval_size, max(1, len(rows) // 10))
        held, rows = rows[:n_eval], rows[n_eval:]
    found = decontaminate.check([r["question"] for r in rows], [r["question"] for r in held])
    fields_ = found.fields([r["question"] for r in rows], "removed" if decontaminate_action == "remove" else "reported")
    if decontaminate_action == "remove" and found.matched:
        drop = set(found.matched)
        rows = [r for i, r in enumerate(rows) if i not in drop]
        if not rows:
            raise ValueError(f"setting 'task': every training row of {task} shares a 10-gram with a held-out question")
    return Dataset(path.stem, train=rows, held_out=held, bad_rows=bad + held_bad, decontamination=fields_)
