"""`python -m grpo train` seen by a person (stdout a terminal: a pseudo-terminal here) and by a program
(stdout a pipe): no protocol lines and a progress bar with a summary in the first case, the unchanged JSON-lines
stream in the second."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from grpo.progress import RecentRate, summary_lines

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "sft_steps=20", "--set", "sft_cache=false", "--set", "max_steps=2", "--set", "questions_per_step=2", "--set", "num_generations=2",
        "--set", "eval_size=8", "--set", "eval_samples=4", "--set", "max_completion_length=16",
        "--set", "onnx_export=false", "--set", "eval_steps=1"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1", "COLUMNS": "160"}


def _run_in_pty(args: list[str], timeout: float = 300) -> tuple[int, str]:
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "grpo", *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                         env=_env(), close_fds=True)
    os.close(slave)
    chunks, end = [], time.time() + timeout
    try:
        while time.time() < end:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
    finally:
        os.close(master)
    code = p.wait(timeout=60)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            v = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(v, dict):
            out.append(v)
    return out


def test_terminal_shows_progress_and_summary_and_no_protocol(tmp_path):
    run = tmp_path / "run"
    code, text = _run_in_pty(["train", "--run-dir", str(run), *TINY])
    assert code == 0, text[-3000:]
    assert _json_lines(text) == []  # not one protocol line reached the terminal
    assert "sft" in text and "grpo" in text and "ETA" in text and "2/2" in text
    assert "held-out" in text and "kl" in text and "reward" in text
    summary = text[text.index("summary"):]
    assert "greedy" in summary and "maj@4" in summary and "pass@4" in summary and "→" in summary
    assert str(run) in summary and "code " in summary
    assert (run / "metrics.jsonl").is_file()  # the run directory keeps the record


def test_a_pipe_gets_the_protocol_stream(tmp_path):
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), *TINY], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    msgs = [json.loads(line) for line in p.stdout.splitlines()]  # every stdout line is protocol JSON
    assert msgs[0]["type"] == "started" and msgs[-1]["type"] in ("status", "event", "exit")
    evals = [m["row"] for m in msgs if m["type"] == "event" and m["row"]["kind"] == "eval"]
    assert evals[0]["step"] == 0 and set(evals[0]["pass_at_k"]) == {"1", "4"}  # k = 8, 16 > 4 samples: left out
    assert evals[-1]["step"] == 2 and "maj_at_k" in evals[-1]
    assert "summary" not in p.stderr  # the summary is for a terminal


def test_recent_rate_eta_follows_a_slowdown():
    rate = RecentRate(window=10)
    for s in range(20):  # 1 step/s for 20 s
        rate.add(float(s), s)
    assert rate.eta(100) == 81.0
    for s in range(20, 40):  # then 1 step every 4 s
        rate.add(19.0 + 4 * (s - 19), s)
    assert abs(rate.eta(100) - 4 * 61) < 1e-9  # the recent rate, not the mean since the start


def test_summary_lines_read_start_and_end_evals(tmp_path):
    events = [{"kind": "eval", "step": 0, "accuracy": 0.5, "n": 400, "samples": 16, "temperature": 1.0,
               "pass_at_k": {"1": 0.6, "8": 0.9}, "maj_at_k": {"1": 0.6, "8": 0.7}},
              {"kind": "eval", "step": 50, "accuracy": 0.7, "n": 400},
              {"kind": "eval", "step": 100, "accuracy": 0.9, "n": 400, "samples": 16, "temperature": 1.0,
               "pass_at_k": {"1": 0.85, "8": 0.95}, "maj_at_k": {"1": 0.85, "8": 0.93}}]
    text = "\n".join(summary_lines(events, 65, tmp_path))
    assert re.search(r"greedy +50\.0% → 90\.0%", text) and re.search(r"maj@8 +70\.0% → 93\.0%", text)
    assert re.search(r"pass@8 +90\.0% → 95\.0%", text) and "time 1:05" in text and str(tmp_path) in text
