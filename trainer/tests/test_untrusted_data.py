"""Untrusted data, second pass (issue 21): a data file is validated once at load (strict UTF-8, bounded sizes,
over-long prompts dropped at set-up, a file with no usable row refused at once with the counts by reason);
run-directory readers skip records that are not objects; `paradigm` writes a committed result only by name."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_training import ROOT, stream_lines, trainer

from grpo import cli, data, paradigm
from grpo.progress import summary_lines
from grpo.rundir import read_jsonl
from grpo.tasks import FileTask

NON_OBJECTS = [b"[1,2,3]", b"42", b"null", b'"a string"', b'[{"step": 1, "kind": "eval"}]']


def _long_question(rng: random.Random) -> str:
    """About 500 characters of distinct numbers: well over max_prompt_length=128 built-in tokens."""
    return "+".join(str(rng.randrange(10**6)) for _ in range(80))


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _row(q: str, a: str) -> bytes:
    return json.dumps({"question": q, "answer": a}).encode()


# ------------------------------------------------------------------------------------------ item 5: load
def test_a_row_that_is_not_utf8_is_bad_not_replaced(tmp_path):
    f = _write(tmp_path / "d.jsonl", [b'{"question":"caf\xe9+1","answer":"2"}', _row("1+1", "2"), _row("2+2", "4")])
    rows, bad = data.read_rows(f)
    assert [r["question"] for r in rows] == ["1+1", "2+2"]  # never 'caf\ufffd+1'
    assert bad == {data.NOT_UTF8: 1} and bad.total() == 1
    assert data.load_rows(f) == (rows, 1)  # the existing callers' (rows, count) is unchanged
    assert "1 not UTF-8" in bad.describe()
    task = FileTask(f, eval_size=1)
    assert task.bad_rows == 1 and "caf\ufffd+1" not in task._answers
    # decontaminate's whole records: the line is not one either
    assert [obj for _, obj in data.raw_records(f, "--train")][0] is None


def test_a_1mb_question_is_rejected_at_load(tmp_path):
    f = _write(tmp_path / "d.jsonl", [_row("1+" * 500_000 + "1", "500001"), _row("1+1", "2"), _row("2+2", "4"),
                                      json.dumps({"question": "3+3", "answer": "6" * (data.MAX_FIELD_CHARS + 1)}).encode()])
    rows, bad = data.read_rows(f)
    assert [r["question"] for r in rows] == ["1+1", "2+2"]
    assert bad == {data.LONG_QUESTION: 1, data.LONG_ANSWER: 1}
    assert f"1 questions over {data.MAX_FIELD_CHARS} characters" in bad.describe()


def test_hostile_lines_are_counted_by_reason_never_held_whole(tmp_path):
    f = _write(tmp_path / "d.jsonl", [b"x" * (data.MAX_LINE_BYTES + 10), b"[" * 200_000, b"not json", *NON_OBJECTS,
                                      b'{"question": 7, "answer": "1"}', b'{"question": "1+1"}',
                                      _row("1+1", "no marker"), _row("2+2", "#### 4"), b"", b"   "])
    rows, bad = data.read_rows(f, answer_format="gsm8k")
    assert rows == [{"question": "2+2", "answer": "4"}]
    assert bad == {data.LONG_LINE: 1, data.NOT_JSON: 2, data.NOT_OBJECT: len(NON_OBJECTS), data.NO_QUESTION: 1,
                   data.NO_ANSWER: 1, data.NO_REFERENCE: 1}


def test_over_long_prompts_are_dropped_once_and_counted(tmp_path):
    rng = random.Random(0)
    good = [_row(f"{i}+{i * 7}", str(i * 8)) for i in range(40)]
    f = _write(tmp_path / "d.jsonl", good + [_row(_long_question(rng), "1") for _ in range(5)])
    task = FileTask(f, eval_size=4)
    calls: list[int] = []

    def lengths(questions):
        calls.append(len(questions))
        return [len(q) + 1 for q in questions]

    assert task.fit_prompts(lengths, 128) == 5
    assert sum(calls) == 45  # every row tokenised once, at set-up
    assert task.long_prompts == 5 and task.bad_rows == 0
    assert all(len(r["question"]) < 128 for r in task.train + task.held_out())
    assert len(task.train) + len(task.held_out()) == 40
    with pytest.raises(ValueError, match=r"no usable rows: 45 prompts over max_prompt_length=2 tokens"):
        FileTask(f, eval_size=4).fit_prompts(lengths, 2)


def _all_bad_file(path: Path) -> Path:
    rng = random.Random(1)
    lines = [b'{"question":"caf\xe9+1","answer":"2"}', b'{"question":"\xff\xfe","answer":"1"}', b"\x80" * 100,
             b"[1,2,3]", b"null", _row("1+" * 500_000 + "1", "500001")]
    lines += [_row(_long_question(rng), str(i)) for i in range(4)]
    return _write(path, lines)


def test_a_file_with_no_usable_row_is_refused_in_seconds_with_bounded_memory(tmp_path):
    f = _all_bad_file(tmp_path / "data.jsonl")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet",
                              "--set", f"task={f}", "--set", "sft_steps=0", "--set", "max_steps=2"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        deadline = t0 + 60
        while (done := os.wait4(p.pid, os.WNOHANG))[0] == 0:
            if time.time() > deadline:
                p.kill()
                p.wait()
                pytest.fail("an all-bad data file was not refused within 60 s")
            time.sleep(0.1)
        p.returncode = os.waitstatus_to_exitcode(done[1])  # Popen need not reap it again
        peak_mb = done[2].ru_maxrss / 1024  # Linux: kB
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    assert p.returncode == 1, stderr[-3000:]
    assert time.time() - t0 < 60
    assert peak_mb < 3000, f"peak RSS {peak_mb:.0f} MB"  # torch and the built-in model: about 1.1 GB
    why = (f"setting 'task': {f} has no usable rows: 3 not UTF-8, 2 not JSON objects, 1 questions over "
           f"{data.MAX_FIELD_CHARS} characters, 4 prompts over max_prompt_length=128 tokens")
    assert why in stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and why in status["error"]


def test_the_held_out_setting_file_names_its_reasons(tmp_path):
    from grpo.config import build_config
    from grpo.tasks import held_out_rows

    f = _write(tmp_path / "h.jsonl", [b"\xe9", b"[1]"])
    with pytest.raises(ValueError, match="setting 'held_out': .* no usable rows: 1 not UTF-8, 1 not JSON objects"):
        held_out_rows(build_config(None, [f"held_out={f}"]))


# ------------------------------------------------------------------------------------------ a real run on a file
@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    """A real 2-step run (no SFT, checkpoints at every step, a group logged every step) on a data file with
    good rows, 3 over-long prompts, 1 row that is not UTF-8 and 1 that is not an object."""
    tmp = tmp_path_factory.mktemp("file_run")
    rng = random.Random(2)
    good = [_row(f"{a}+{b}", str(a + b)) for a, b in {(rng.randrange(100), rng.randrange(100)) for _ in range(60)}]
    f = _write(tmp / "data.jsonl", good + [_row(_long_question(rng), "1") for _ in range(3)]
               + [b'{"question":"caf\xe9+1","answer":"2"}', b"[1,2,3]"])
    run = tmp / "run"
    p = trainer(run, "--set", f"task={f}", "--set", "sft_steps=0", "--set", "max_steps=2", "--set", "save_steps=1",
                "--set", "eval_steps=0", "--set", "eval_size=4", "--set", "log_samples_steps=1",
                "--set", "onnx_export=false")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return run


def test_bad_rows_and_long_prompts_are_warned_once_at_the_start(file_run):
    events, bad = read_jsonl(file_run / "events.jsonl")
    assert bad == 0
    warnings = [e for e in events if e["kind"] == "warning"]
    by_code = {e["code"]: e for e in warnings}
    assert by_code["bad_rows"]["count"] == 2 and by_code["bad_rows"]["step"] == 0
    assert "1 not UTF-8, 1 not JSON objects" in by_code["bad_rows"]["message"]
    assert by_code["long_prompts"]["count"] == 3 and by_code["long_prompts"]["step"] == 0
    assert "max_prompt_length=128" in by_code["long_prompts"]["message"]
    assert [e["code"] for e in warnings].count("long_prompts") == 1  # never again while training


# ------------------------------------------------------------------------------------------ item 6: readers
def test_read_jsonl_skips_and_counts_records_that_are_not_objects(tmp_path):
    f = _write(tmp_path / "m.jsonl", [b'{"step": 1}', *NON_OBJECTS, b'{"step": 2}', b"{torn"])
    rows, bad = read_jsonl(f)
    assert rows == [{"step": 1}, {"step": 2}] and bad == len(NON_OBJECTS) + 1


def test_non_object_lines_do_not_break_resume(file_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(file_run, run)
    for name in ("metrics.jsonl", "samples.jsonl"):
        with (run / name).open("ab") as f:
            f.write(b"".join(line + b"\n" for line in NON_OBJECTS))
    with (run / "events.jsonl").open("ab") as f:
        f.write(b"".join(line + b"\n" for line in NON_OBJECTS))
    p = trainer(run, "--resume", "--set", "max_steps=3")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert stream_lines(out)[0]["resumed_from"] == 2
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 3
    metrics, bad = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3] and bad == 0  # the rewind dropped the non-objects
    samples, bad = read_jsonl(run / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 2, 3] and bad == 0
    events, bad = read_jsonl(run / "events.jsonl")
    assert bad == len(NON_OBJECTS)
    assert [e["step"] for e in events if e["kind"] == "resume"] == [2]


def test_the_terminal_summary_survives_non_objects_in_events(tmp_path):
    ev = {"kind": "eval", "time": 1.0, "step": 0, "accuracy": 0.5, "n": 4, "samples": 2, "temperature": 1.0,
          "pass_at_k": {"1": 0.5, "2": 0.75}, "maj_at_k": {"1": 0.5}}
    odd = {"kind": "eval", "time": 2.0, "step": 2, "accuracy": "high", "pass_at_k": {"x": 1, "²": 1, "2": "y"},
           "samples": 3, "temperature": "hot"}  # an object, but not what an eval event holds
    f = _write(tmp_path / "events.jsonl", [*NON_OBJECTS, json.dumps(ev).encode(), json.dumps(odd).encode()])
    events, bad = read_jsonl(f)
    assert bad == len(NON_OBJECTS)
    for records in (events, [[1, 2, 3], 42, None, *events]):  # what read_jsonl gives, and a list handed in raw
        text = "\n".join(summary_lines(records, 12.0, tmp_path))
        assert "greedy" in text and "50.0%" in text and "pass@2" in text and "run directory" in text


# ------------------------------------------------------------------------------------------ item 8: paradigm
def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def test_paradigm_results_go_beside_the_runs_unless_named(tmp_path, monkeypatch):
    got = []

    def fake_run(parent, **kw):
        got.append((parent, kw["results"]))
        return {}

    monkeypatch.setattr(paradigm, "run", fake_run)
    monkeypatch.setattr(cli, "_setup_logging", lambda *a, **k: None)  # leave this process's logging alone
    monkeypatch.chdir(tmp_path)
    assert cli.main(["paradigm", "--smoke", "--out", "runs/p"]) == 0
    assert got[-1] == (Path("runs/p"), Path("runs/p") / "paradigm.json")
    assert cli.main(["paradigm", "--smoke", "--out", "runs/q", "--results", "bench/results/paradigm-cpu.json"]) == 0
    assert got[-1][1] == Path("bench/results/paradigm-cpu.json")  # a committed result, only when named


def test_paradigm_smoke_leaves_bench_results_untouched(tmp_path):
    committed = ROOT / "bench" / "results"
    before = _snapshot(committed)
    # run where the old default (a path relative to the working directory) would land on a copy of them too
    cwd = tmp_path / "cwd"
    shutil.copytree(committed, cwd / "bench" / "results")
    copied = _snapshot(cwd / "bench" / "results")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "grpo", "paradigm", "--smoke", "--seeds", "1", "--steps", "1",
                        "--methods", "sft", "--set", "sft_steps=4", "--out", str(out)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _snapshot(cwd / "bench" / "results") == copied
    assert _snapshot(committed) == before
    results = json.loads((out / "paradigm.json").read_text())
    assert list(results["methods"]) == ["sft"] and (out / "paradigm.png").stat().st_size > 0
