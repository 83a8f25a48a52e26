"""JSONL and Parquet datasets, configurable columns, GSM8K/MATH answers, bad rows counted."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grpo import answers, data
from grpo.tasks import FileTask

GSM8K_SOLUTION = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
MATH_SOLUTION = "We have $x = \\frac{1}{2}$, so the answer is $\\boxed{\\frac{\\sqrt{3}}{2}}$."


@pytest.mark.parametrize("field,fmt,expected", [
    (GSM8K_SOLUTION, "auto", "72"),
    (GSM8K_SOLUTION, "gsm8k", "72"),
    ("so #### 1,234", "gsm8k", "1234"),
    (MATH_SOLUTION, "auto", "\\frac{\\sqrt{3}}{2}"),
    ("first \\boxed{1} then \\boxed{\\{a, b\\}}", "math", "\\{a, b\\}"),     # the last box, braces balanced
    ("\\fbox{7}", "math", "7"),
    (" 42 ", "plain", "42"),
    ("\\frac{1}{2}", "auto", "\\frac{1}{2}"),                                  # a bare answer stays as it is
    ("no marker here", "gsm8k", None),
    ("\\boxed{unclosed", "math", None),
    ("no box", "math", None),
    ("#### ", "auto", None),
])
def test_reference_answer_formats(field, fmt, expected):
    assert answers.reference(field, fmt) == expected


def test_jsonl_with_math_columns_and_bad_rows(tmp_path):
    f = tmp_path / "math.jsonl"
    rows = [{"problem": f"p{i}", "solution": f"so \\boxed{{{i}}}"} for i in range(5)]
    lines = [json.dumps(r) for r in rows] + [
        "{broken", json.dumps([1]), json.dumps({"problem": "no solution"}),
        json.dumps({"problem": "p", "solution": "no box at all"}), json.dumps({"problem": 3, "solution": "\\boxed{1}"}),
        "",
    ]
    f.write_text("\n".join(lines) + "\n")
    got, bad = data.load_rows(f, "problem", "solution", "math")
    assert [r["answer"] for r in got] == ["0", "1", "2", "3", "4"] and bad == 5
    assert got[0]["question"] == "p0"


def test_parquet_rows_columns_and_bad_rows(tmp_path):
    f = tmp_path / "gsm8k.parquet"
    pq.write_table(pa.table({
        "question": ["a?", "b?", None, "d?", "e?"],
        "answer": [GSM8K_SOLUTION, "x\n#### 1,000", "#### 3", "no marker", None],
        "extra": [1, 2, 3, 4, 5],
    }), f)
    got, bad = data.load_rows(f, answer_format="gsm8k")
    assert got == [{"question": "a?", "answer": "72"}, {"question": "b?", "answer": "1000"}] and bad == 3
    task = FileTask(f, eval_size=10, seed=0, answer_format="gsm8k")
    assert len(task.train) + len(task.held_out()) == 2 and task.bad_rows == 3
    assert task.answer("b?") == "1000" and task.answer("d?") is None


def test_parquet_missing_column_names_the_setting(tmp_path):
    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"problem": ["q"], "solution": ["\\boxed{1}"]}), f)
    with pytest.raises(ValueError, match="setting 'question_column'.*'question'.*problem, solution"):
        data.load_rows(f)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        data.load_rows(not_parquet)


def test_too_few_usable_rows_is_an_error(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(ValueError, match="no usable rows: 1 answers with no reference answer"):
        FileTask(f, 10, 0, answer_format="gsm8k")
