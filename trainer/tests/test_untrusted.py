"""Hostile and broken input (issue 14): a run directory is data, never code; no request line takes the
control channel down; a damaged checkpoint is named, and --resume falls back past it."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from child import Proc
from test_training import FAST, ROOT, stream_lines, trainer

from grpo import checkpoint, protocol
from grpo.rundir import read_jsonl

HOSTILE_LINES = [
    b"[" * 200_000,                                   # RecursionError in json
    b'{"v":1,"type":"pause","id":"caf\xe9"}',         # Latin-1, not UTF-8
    b"x" * (3 << 20),                                 # longer than any request
    b'{"v":1,"type":"pause","id":"\\ud800"}',         # an id that cannot be encoded as UTF-8
    b'{"v":1,"type":"pause","id":' + b"9" * 5000 + b"}",  # an int past Python's digit limit
    b'{"v":1,"type":"pause","x":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",  # parses, but too deep
]


def test_control_channel_survives_every_hostile_line():
    out = io.StringIO()
    src = io.BytesIO(b"\n".join(HOSTILE_LINES + [b'{"v":1,"type":"pause","id":"after"}']) + b"\n")
    requests = protocol.Requests(protocol.Stream(out), source=src)
    msg = requests.wait(timeout=30)
    assert msg is not None and msg["id"] == "after"  # the reader outlived every bad line
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(answers) == len(HOSTILE_LINES)
    assert all(a["type"] == "response" and a["ok"] is False and a["id"] is None for a in answers)
    errors = [a["error"] for a in answers]
    assert "nests deeper" in errors[0] and "UTF-8" in errors[1] and "longer than" in errors[2]
    assert "'id'" in errors[3] and "nests deeper" in errors[5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real 3-step run (no SFT), checkpoints at every step, written once and copied by each test. Its
    reward function calls sys.exit on some samples."""
    run = tmp_path_factory.mktemp("trained") / "run"
    p = trainer(run, "--set", "sft_steps=0", "--set", "max_steps=3", "--set", "save_steps=1",
                "--set", "eval_steps=0", "--set", "log_samples_steps=0", "--set", "reward_function=length_reward:exits")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copied-run"
    shutil.copytree(run, dst)
    return dst


class _Planted:
    """Unpickling this runs a shell command that leaves a file behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(ckpt: Path, name: str, marker: Path) -> None:
    import torch

    torch.save({"optimizer": {"state": {}, "param_groups": []}, "x": _Planted(marker)}, ckpt / name)
    checkpoint.write_checksums(ckpt)  # whoever planted it can fix the checksums too


def test_checkpoints_load_without_pickle(trained):
    import torch

    ckpt = trained / "checkpoints" / "step_000003"
    assert checkpoint.problem(ckpt) is None
    for name in ("optimizer.pt", "rng.pt"):  # plain tensors and lists: the safe loader reads them
        assert isinstance(torch.load(ckpt / name, weights_only=True), dict)


@pytest.mark.parametrize("name", ["optimizer.pt", "rng.pt"])
def test_planted_pickle_never_runs_on_resume(trained, tmp_path, name):
    run = _copy(trained, tmp_path)
    marker = tmp_path / "pwned"
    _plant(run / "checkpoints" / "step_000003", name, marker)
    p = trainer(run, "--resume", "--set", "max_steps=4")
    out, err = p.communicate(timeout=600)
    assert not marker.exists()  # nothing ran
    events, _ = read_jsonl(run / "events.jsonl")
    if name == "optimizer.pt":  # refused: the run fails naming the file
        assert p.returncode == 1
        assert f"step_000003/{name}: refused" in err
        assert json.loads((run / "status.json").read_text())["state"] == "failed"
    else:  # the random streams are not restored; training goes on
        assert p.returncode == 0, err
        warn = [e for e in events if e.get("code") == "rng_not_restored"]
        assert warn and f"step_000003/{name}: refused" in warn[0]["message"]


def test_resume_falls_back_past_a_damaged_checkpoint(trained, tmp_path):
    run = _copy(trained, tmp_path)
    weights = run / "checkpoints" / "step_000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn write
    p = trainer(run, "--resume", "--set", "max_steps=4")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    started = stream_lines(out)[0]
    assert started["resumed_from"] == 2
    events, _ = read_jsonl(run / "events.jsonl")
    skipped = [e for e in events if e.get("code") == "checkpoint_damaged"]
    assert len(skipped) == 1 and "step_000003/model.safetensors" in skipped[0]["message"]
    assert "resuming from step_000002" in skipped[0]["message"]
    assert json.loads((run / "status.json").read_text())["step"] == 4


def test_damaged_checkpoint_is_named_by_every_command(trained, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    data = tmp_path / "eval.jsonl"
    data.write_text('{"question": "1+1", "answer": "2"}\n')
    cases = {"optimizer.pt": lambda run, ckpt: ["serve", "--checkpoint", str(run)],
             "rng.pt": lambda run, ckpt: ["sample", "--checkpoint", str(ckpt), "--question", "1+1"],
             "trainer_state.json": lambda run, ckpt: ["eval", "--checkpoint", str(ckpt), "--data", str(data)],
             "model.safetensors": lambda run, ckpt: ["export-onnx", "--checkpoint", str(ckpt),
                                                     "--out", str(tmp_path / "onnx")]}
    for damage, args in cases.items():
        run = _copy(trained, tmp_path / damage)
        ckpt = run / "checkpoints" / "step_000003"
        f = ckpt / damage
        f.write_bytes(f.read_bytes()[:10])
        p = subprocess.run([sys.executable, "-m", "grpo", *args(run, ckpt)], capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=300)
        assert p.returncode == 1, (damage, p.stderr)
        assert f"step_000003/{damage}: damaged" in p.stderr, (damage, p.stderr)
        assert "Traceback" not in p.stderr


def test_serve_answers_after_hostile_lines(tiny_run):
    proc = Proc(["serve", "--checkpoint", str(tiny_run)], env={"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C"})
    assert proc.next(lambda m: True)["type"] == "started"
    for line in HOSTILE_LINES:
        proc.p.stdin.buffer.write(line + b"\n")
        proc.p.stdin.buffer.flush()
        bad = proc.next(lambda m: m["type"] == "response")
        assert bad["ok"] is False and bad["id"] is None
    assert proc.ok("score", prompt="1+1\n", text="#### 2")["tokens"][0] == "#"  # still answering
    assert proc.request("stop")["ok"]
    assert proc.p.wait(timeout=60) == 0


# ------------------------------------------------------------------------------------------ rewards
@pytest.mark.parametrize("fn,why", [("exits", "SystemExit: 3"), ("strings", "'1' (str), not a number"),
                                    ("huge", "not a finite number")])
def test_bad_reward_functions_are_reward_errors(fn, why):
    from grpo.rewards import Rewarder

    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    try:
        r = Rewarder("number", "outcome", f"length_reward:{fn}")
    finally:
        sys.path.pop(0)
    scored = r(["q"] * 4, ["a7", "b", "c7", "d"], ["1"] * 4)
    assert all(isinstance(x, float) and abs(x) <= 1e9 for x in scored.rewards)
    assert scored.errors and why in scored.errors[0]


def test_reward_function_calling_sys_exit_does_not_end_training(trained):
    events, _ = read_jsonl(trained / "events.jsonl")
    assert json.loads((trained / "status.json").read_text())["state"] == "finished"
    warnings = [e for e in events if e.get("code") == "reward_error"]
    assert warnings and "SystemExit" in warnings[0]["message"]
    # save_steps divides max_steps: the final checkpoint is written once
    assert [e["path"] for e in events if e["kind"] == "checkpoint"] == [
        "checkpoints/step_000000", "checkpoints/step_000001", "checkpoints/step_000002", "checkpoints/step_000003"]


def test_an_unexpected_exit_marks_the_run_failed(tmp_path):
    bad = tmp_path / "mods"
    bad.mkdir()
    (bad / "quits.py").write_text("import sys\nsys.exit(4)\n")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(bad)])}
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), *FAST, "--set", "sft_steps=0",
                        "--set", "max_steps=1", "--set", "reward_function=quits:f"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 1
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "'reward_function'" in status["error"] and "SystemExit" in status["error"]


def test_a_non_hf_model_directory_names_the_setting(tmp_path):
    model = tmp_path / "not-a-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    p = trainer(tmp_path / "run", "--set", f"model={model}", "--set", "sft_steps=0", "--set", "max_steps=1")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1 and f"setting 'model' ({model})" in err


def test_sft_saves_every_sft_save_steps_and_resume_continues_it(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=6", "--set", "sft_save_steps=3", "--set", "sft_cache=false", "--set", "max_steps=0",
                "--set", "onnx_export=false")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    names = sorted(c.name for c in (run / "checkpoints").iterdir())
    assert {"sft_000003", "sft_000006"} <= set(names), names
    # as if SIGKILLed after sft step 3: drop the later checkpoints, then resume
    for n in names:
        if n != "sft_000003":
            shutil.rmtree(run / "checkpoints" / n)
    p = trainer(run, "--resume", "--set", "onnx_export=false")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    progress = [m for m in stream_lines(out) if m["type"] == "progress" and m["phase"] == "sft"]
    assert json.loads((run / "status.json").read_text())["sft_step"] == 6
    assert not progress or progress[0]["step"] > 3


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs a small tmpfs (root)")
def test_a_full_disk_fails_the_run_visibly(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = mnt / "run"
        p = trainer(run, "--set", "sft_steps=0", "--set", "max_steps=2")
        out, err = p.communicate(timeout=300)
        assert p.returncode == 1
        assert "No space left on device" in err or f"no space left on {mnt}" in err, err  # the mount is named
        msgs = stream_lines(out)
        assert any(m["type"] == "event" and m["row"]["kind"] == "error" for m in msgs)
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "failed" and "no space left" in status["error"].lower()
        assert "unexpected pos" not in status["error"] and "safetensors" not in status["error"]
        assert not list((run / "checkpoints").glob("*.tmp"))  # no half-written checkpoint is left
    finally:
        subprocess.run(["umount", str(mnt)])


def test_resume_never_reads_a_device_from_the_run_directory(trained, tmp_path):
    run = _copy(trained, tmp_path)
    (run / "config.json").unlink()
    (run / "config.json").symlink_to("/dev/zero")  # a symlink git can ship: read, it never ends
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--resume"], capture_output=True,
                       text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode == 2 and "config.json: not a regular file" in p.stderr
    (run / "config.json").unlink()
    shutil.copy(trained / "config.json", run / "config.json")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to("/dev/zero")
    p = trainer(run, "--resume", "--set", "max_steps=4")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1 and "metrics.jsonl: refused: a symbolic link" in err  # before anything is written
    assert json.loads((run / "status.json").read_text())["state"] != "running"
