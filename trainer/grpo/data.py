"""Reading question/answer rows from a JSONL or Parquet file (the file task, tasks/files.py, is built on it).

Column names are settings (`question_column`, `answer_column`: GSM8K has question/answer, MATH
problem/solution). The reference answer is read from the answer field by `answer_format` (answers.py): GSM8K's
worked solution ends `#### 72`; MATH's solution holds the answer in its last `\\boxed{…}`.

A data file is untrusted input, validated once, as it is read: each line is decoded as strict UTF-8 and read
at most MAX_LINE_BYTES at a time (a longer line is skipped, never held whole), and a question or answer is at
most MAX_FIELD_CHARS characters. A bad row (not UTF-8, not JSON, not an object, a missing, non-string or
over-long field, no answer where the format needs one) is skipped and counted by reason (`BadRows`); the
count is reported once as a warning event by the caller, and a file with no usable row is refused with the
counts by reason. Prompts longer than `max_prompt_length` tokens are dropped once, at set-up
(`Task.fit_prompts`), not while training.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from . import answers

MAX_FIELD_CHARS = 65536          # characters in one question or one answer; a longer one makes the row bad
MAX_LINE_BYTES = 8 * 1024 * 1024  # bytes in one JSONL line (other fields included); a longer line is bad

# why a row is bad: the keys of BadRows, worded to follow a count ("3 not UTF-8")
NOT_UTF8 = "not UTF-8"
NOT_JSON = "not JSON"
NOT_OBJECT = "not JSON objects"
LONG_LINE = f"lines over {MAX_LINE_BYTES} bytes"
NO_QUESTION = "without a question (a non-empty string)"
NO_ANSWER = "without an answer (a non-empty string or a number)"
LONG_QUESTION = f"questions over {MAX_FIELD_CHARS} characters"
LONG_ANSWER = f"answers over {MAX_FIELD_CHARS} characters"
NO_REFERENCE = "answers with no reference answer in their answer_format"


def long_prompts(limit: int) -> str:
    """The reason for rows dropped at set-up: their prompt is longer than `max_prompt_length` tokens."""
    return f"prompts over max_prompt_length={limit} tokens"


class BadRows(collections.Counter):
    """Bad rows by reason (the constants above); `total()` is the `bad_rows` count. `marked`: of the usable
    rows, how many had their answer read after GSM8K's '####' marker (the task then defines a marker)."""

    marked = 0

    def describe(self) -> str:
        """'3 not UTF-8, 2 not JSON objects, …' (empty when nothing was bad)."""
        return ", ".join(f"{n} {reason}" for reason, n in self.items() if n)


def _check_row(obj, question_column: str, answer_column: str, answer_format: str) -> dict | str:
    """The clean row {"question", "answer"} of a decoded record, or why it is bad (a reason constant)."""
    if not isinstance(obj, dict):
        return NOT_OBJECT
    q, a = obj.get(question_column), obj.get(answer_column)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = str(a)
    if not isinstance(q, str) or not q.strip():
        return NO_QUESTION
    if len(q) > MAX_FIELD_CHARS:
        return LONG_QUESTION
    if not isinstance(a, str) or not a.strip():
        return NO_ANSWER
    if len(a) > MAX_FIELD_CHARS:
        return LONG_ANSWER
    ref = answers.reference(a, answer_format)
    if ref is None:
        return NO_REFERENCE
    marked = answer_format in ("auto", "gsm8k") and answers.MARKER in a  # read after the marker: GSM8K style
    return {"question": q, "answer": ref, **({"marked": True} if marked else {})}


def _columns(obj: dict) -> dict:
    """A record's columns as TRL-style reward functions receive them (rewards.py): those whose value is JSON of
    at most MAX_FIELD_CHARS characters (a replay record keeps them as JSON)."""
    out = {}
    for k, v in obj.items():
        try:
            if isinstance(k, str) and len(json.dumps(v)) <= MAX_FIELD_CHARS:
                out[k] = v
        except (TypeError, ValueError, RecursionError):
            pass
    return out


def _collect(objs, question_column: str, answer_column: str, answer_format: str,
             columns: bool = False) -> tuple[list[dict], BadRows]:
    """The clean rows of `objs` (decoded records; a reason string for one that did not decode) and the bad
    ones by reason; with `columns`, each row keeps its record's columns (`columns`: a dict)."""
    rows, bad = [], BadRows()
    for obj in objs:
        row = obj if isinstance(obj, _Undecoded) else _check_row(obj, question_column, answer_column, answer_format)
        if isinstance(row, dict):
            if columns:
                row["columns"] = _columns(obj)
            rows.append(row)
        else:
            bad[str(row)] += 1
    return rows, bad


class _Undecoded(str):
    """Why a line gave no record (a reason constant): told apart from a decoded JSON string."""


def _lines(f):
    """Each non-blank line of a binary file as (its text, its decoded object, or _Undecoded(why) for none):
    strict UTF-8, at most MAX_LINE_BYTES read per line (the rest of a longer one is skipped, never held)."""
    first = True
    while raw := f.readline(MAX_LINE_BYTES + 1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(MAX_LINE_BYTES)
            yield "", _Undecoded(LONG_LINE)
            continue
        if first and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors write
            raw = raw[3:]
        first = False
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield "", _Undecoded(NOT_UTF8)
            continue
        line = line.rstrip("\r\n")
        try:
            yield line, json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError, digits past int's limit, nesting too deep
            yield line, _Undecoded(NOT_JSON)


def _json_lines(f):
    """(the line, its decoded object or None when it is not one) for each non-blank line of a binary file."""
    for line, obj in _lines(f):
        yield line, None if isinstance(obj, _Undecoded) else obj


def read_jsonl_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                    answer_format: str = "plain", columns: bool = False) -> tuple[list[dict], BadRows]:
    """Rows with string question and answer (numbers are accepted as answers); bad rows by reason."""
    with Path(path).open("rb") as f:
        return _collect((obj for _, obj in _lines(f)), question_column, answer_column, answer_format, columns)


def load_jsonl_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                    answer_format: str = "plain") -> tuple[list[dict], int]:
    """Rows with string question and answer (numbers are accepted as answers); bad rows counted."""
    rows, bad = read_jsonl_rows(path, question_column, answer_column, answer_format)
    return rows, bad.total()


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


def read_parquet_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                      answer_format: str = "plain", columns: bool = False) -> tuple[list[dict], BadRows]:
    """The same rows from a Parquet file (read with pyarrow), bad ones by reason. A missing column is an error
    naming it."""
    table = _parquet_table(path, "setting 'task'")
    for key, col in (("question_column", question_column), ("answer_column", answer_column)):
        if col not in table.column_names:
            raise ValueError(f"setting '{key}': {path} has no column {col!r} (columns: "
                             f"{', '.join(table.column_names)})")
    if columns:
        return _collect(iter(table.to_pylist()), question_column, answer_column, answer_format, columns)
    qs = table.column(question_column).to_pylist()
    answers = table.column(answer_column).to_pylist()
    objs = ({question_column: q, answer_column: a} for q, a in zip(qs, answers))
    return _collect(objs, question_column, answer_column, answer_format)


def load_parquet_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
                      answer_format: str = "plain") -> tuple[list[dict], int]:
    """The same rows from a Parquet file (read with pyarrow). A missing column is an error naming it."""
    rows, bad = read_parquet_rows(path, question_column, answer_column, answer_format)
    return rows, bad.total()


def read_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
              answer_format: str = "plain", columns: bool = False) -> tuple[list[dict], BadRows]:
    """JSONL or Parquet by the file's extension (.parquet / .pq; anything else is read as JSONL): the usable
    rows and the bad ones by reason (`columns`: each row keeps its record's columns, for reward_funcs)."""
    reader = read_parquet_rows if Path(path).suffix.lower() in (".parquet", ".pq") else read_jsonl_rows
    rows, bad = reader(path, question_column, answer_column, answer_format, columns)
    bad.marked = sum(bool(r.pop("marked", False)) for r in rows)
    return rows, bad


def load_rows(path: str | Path, question_column: str = "question", answer_column: str = "answer",
              answer_format: str = "plain") -> tuple[list[dict], int]:
    """JSONL or Parquet by the file's extension (.parquet / .pq; anything else is read as JSONL); bad rows
    counted (`read_rows` gives them by reason)."""
    rows, bad = read_rows(path, question_column, answer_column, answer_format)
    return rows, bad.total()


def raw_records(path: str | Path, where: str) -> list[tuple[str, object]]:
    """Every record of a JSONL or Parquet file whole, as (its JSON text, the decoded object; None for a line
    that is not UTF-8 JSON or is over MAX_LINE_BYTES): what `grpo decontaminate --out` writes back, whatever the
    rows' other fields."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return [(json.dumps(o, default=str), o) for o in _parquet_table(path, where).to_pylist()]
    with Path(path).open("rb") as f:
        return list(_json_lines(f))
