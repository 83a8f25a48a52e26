"""Reading question/answer rows from a JSONL or Parquet file (the file task, tasks/files.py, is built on it).

Column names are settings (`question_column`, `answer_column`: GSM8K has question/answer, MATH
problem/solution). The reference answer is read from the answer field by `answer_format` (answers.py): GSM8K's
worked solution ends `#### 72`; MATH's solution holds the answer in its last `\\boxed{…}`. A bad row (not
JSON, not an object, a missing or non-string field, no answer where the format needs one) is skipped and
counted; the count is reported once as a warning event by the caller.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import answers


def _clean_row(obj, question_column: str, answer_column: str, answer_format: str) -> dict | None:
    if not isinstance(obj, dict):
        return None
    q, a = obj.get(question_column), obj.get(answer_column)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = str(a)
    if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
        return None
    ref = answers.reference(a, answer_format)
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
    """(the line, its decoded object or None when it is not JSON) for each non-blank line."""
    for line in f:
        if not line.strip():
            continue
        try:
            yield line.rstrip("\n"), json.loads(line)
        except json.JSONDecodeError:
            yield line, None


def load_jsonl_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                    answer_format: str = "plain") -> tuple[list[dict], int]:
    """Rows with string question and answer (numbers are accepted as answers); bad rows counted."""
    with Path(path).open("r", encoding="utf-8", errors="replace") as f:
        return _collect((obj for _, obj in _json_lines(f)), question_column, answer_column, answer_format)


def _parquet_table(path: str | Path, where: str):
    """The pyarrow table of a Parquet file; ValueError starting with `where` (the setting or option)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{where}: reading Parquet needs the pyarrow package "
                         "(pip install -r trainer/requirements.txt)") from None
    try:
        return pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise ValueError(f"{where}: {path} is not a readable Parquet file: {e}") from None


def load_parquet_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                      answer_format: str = "plain") -> tuple[list[dict], int]:
    """The same rows from a Parquet file (read with pyarrow). A missing column is an error naming it."""
    table = _parquet_table(path, "setting 'task'")
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


def raw_records(path: str | Path, where: str) -> list[tuple[str, object]]:
    """Every record of a JSONL or Parquet file whole, as (its JSON text, the decoded object; None for a line
    that is not JSON): what `grpo decontaminate --out` writes back, whatever the rows' other fields."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return [(json.dumps(o, default=str), o) for o in _parquet_table(path, where).to_pylist()]
    with Path(path).open("r", encoding="utf-8", errors="replace") as f:
        return list(_json_lines(f))
