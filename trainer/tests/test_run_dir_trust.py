"""A run directory is data, second pass (issue 21): it never supplies code, its links are refused, one process
writes it at a time, and `--resume` does not continue a different run under its name."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_training import FAST, ROOT, trainer, wait_for

from grpo import plugins, rundir
from grpo.config import Config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A real 2-step run (no SFT, no ONNX) with a checkpoint at every step, copied by each test."""
    run = tmp_path_factory.mktemp("base") / "run"
    p = trainer(run, "--set", "sft_steps=0", "--set", "max_steps=2", "--set", "save_steps=1", "--set", "eval_steps=0",
                "--set", "eval_samples=0", "--set", "onnx_export=false", "--set", "log_samples_steps=1")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return run


def _grpo(*args: str, cwd: Path, env: dict | None = None, stdin: str = "", timeout: float = 120
          ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "grpo", *args], cwd=cwd, env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout)


def _shared_run(base_run: Path, ws: Path, **settings) -> Path:
    """A copy of the run in `ws/runs/shared`, its config.json edited as a hostile colleague would."""
    run = ws / "runs" / "shared"
    shutil.copytree(base_run, run)
    (run / rundir.LOCK_FILE).unlink(missing_ok=True)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, **settings}))
    return run


# ---------------------------------------------------------------------------------------------- no code
@pytest.mark.parametrize("spec", ["code:interact", "this:s", "sys:exit", "os:system", "subprocess:run"])
def test_a_run_naming_a_standard_library_callable_is_refused_before_it_runs(base_run, tmp_path, spec):
    run = _shared_run(base_run, tmp_path, task=spec)
    r = _grpo("serve", "--checkpoint", str(run), cwd=tmp_path, stdin="__import__('os').system('touch MARK')\n")
    assert r.returncode != 0 and not (tmp_path / "MARK").exists()
    assert r.stdout == ""  # nothing reached the protocol stream, not even a `started`
    assert f"setting 'task' names {spec!r}" in r.stderr and "standard-library" in r.stderr
    for cmd in (["eval", "--data", os.devnull], ["sample", "--question", "1+1"]):
        r = _grpo(*cmd, "--checkpoint", str(run), cwd=tmp_path)
        assert r.returncode != 0 and "standard-library" in r.stderr


@pytest.mark.parametrize("setting", ["task", "reward_function"])
def test_a_run_carrying_its_own_module_never_runs_it(base_run, tmp_path, setting):
    """The extension's launch (PYTHONSAFEPATH, the workspace on the module path) and a shell in the workspace:
    a module inside the run directory, or beside it in the shared runs/ folder, is not imported."""
    run = _shared_run(base_run, tmp_path, **{setting: "runs.shared.payload:make"})
    payload = "import pathlib\npathlib.Path(__file__).with_name('MARK').touch()\ndef make(*a, **k):\n    return 0\n"
    (run / "payload.py").write_text(payload)
    (tmp_path / "runs" / "lib").mkdir()
    (tmp_path / "runs" / "lib" / "payload.py").write_text(payload)
    extension = {"PYTHONSAFEPATH": "1", "GRPO_WORKSPACE": str(tmp_path)}
    for env, cwd in ((extension, tmp_path.parent), ({}, tmp_path)):
        r = _grpo("eval", "--checkpoint", "runs/shared" if cwd == tmp_path else str(run), "--data", os.devnull,
                  cwd=cwd, env=env)
        assert r.returncode != 0 and "a run directory never supplies code" in r.stderr, r.stderr
        assert str(run / "payload.py") in r.stderr
    beside = _shared_run(base_run, tmp_path / "other", **{setting: "lib.payload:make"})
    (tmp_path / "other" / "runs" / "lib").mkdir()
    (tmp_path / "other" / "runs" / "lib" / "payload.py").write_text(payload)
    r = _grpo("sample", "--checkpoint", str(beside), "--question", "1+1", cwd=tmp_path / "other",
              env={"PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(tmp_path / "other" / "runs")])})
    assert r.returncode != 0 and "beside the run directory" in r.stderr, r.stderr
    assert not list(tmp_path.rglob("MARK"))


def test_user_code_names_the_module_and_file_without_importing_and_serve_can_skip_it(base_run, tmp_path):
    """What the extension asks before opening a run: the module, its file, refused or not; then `serve
    --no-user-code` opens the run without importing it, and a workspace module is imported with a log line."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "my_rewards.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n"
        "def score(questions, completions, answers):\n    return [1.0] * len(completions)\n")
    run = _shared_run(base_run, tmp_path / "ws", reward_function="my_rewards:score")
    env = {"PYTHONSAFEPATH": "1", "GRPO_WORKSPACE": str(tmp_path / "ws")}
    r = _grpo("user-code", str(run), cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    [code] = json.loads(r.stdout)["modules"]
    assert code == {"setting": "reward_function", "spec": "my_rewards:score", "module": "my_rewards", "attr": "score",
                    "origin": str(tmp_path / "ws" / "my_rewards.py"), "refused": None}
    assert not (tmp_path / "ws" / "IMPORTED").exists()
    request = json.dumps({"v": 1, "type": "sample_group", "id": "a", "question": "1+2", "num_generations": 2,
                          "max_completion_length": 4}) + "\n"
    r = _grpo("serve", "--checkpoint", str(run), "--no-user-code", cwd=tmp_path, env=env, stdin=request)
    assert r.returncode == 0 and not (tmp_path / "ws" / "IMPORTED").exists(), r.stderr
    assert "not importing the user code this run names (my_rewards:score)" in r.stderr
    assert [json.loads(line)["ok"] for line in r.stdout.splitlines()[1:]] == [True]
    r = _grpo("serve", "--checkpoint", str(run), cwd=tmp_path, env=env, stdin=request)
    assert r.returncode == 0 and (tmp_path / "ws" / "IMPORTED").exists(), r.stderr
    assert [json.loads(line)["ok"] for line in r.stdout.splitlines()[1:]] == [True]
    assert f"names user code: importing 'my_rewards' from {tmp_path / 'ws' / 'my_rewards.py'}" in r.stderr


def test_only_python_callables_outside_the_standard_library_pass(tmp_path, monkeypatch):
    (tmp_path / "reexports.py").write_text("from subprocess import run\nfrom os import system\nX = 3\n"
                                           "def ok(q, c, a):\n    return [0.0] * len(c)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("run", "system", "X"):
        with pytest.raises(plugins.UntrustedCode, match="reward function defined in Python"):
            plugins.load_object(f"reexports:{name}", "reward_function", accept=callable)
    assert plugins.load_object("reexports:ok", "reward_function", accept=callable)([], ["a"], []) == [0.0]
    with pytest.raises(plugins.UntrustedCode, match="trainer's own modules"):
        plugins.load_object("grpo.cli:main", "task")
    assert [c.spec for c in plugins.named_code(Config(task="arith", reward_function="m:f"))] == ["m:f"]


# ---------------------------------------------------------------------------------------------- no links
@pytest.mark.parametrize("name", ["status.json.tmp", "config.json.tmp", "metrics.jsonl.tmp", "samples.jsonl.tmp",
                                  "events.jsonl", "trainer.log", "checkpoints"])
def test_resume_refuses_a_link_in_the_run_directory_and_writes_nothing_through_it(base_run, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    victim = tmp_path / "victim"
    if name == "checkpoints":
        shutil.move(run / "checkpoints", victim)
    else:
        (run / name).unlink(missing_ok=True)
        victim.write_text("precious\n")
    before = {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()}
    (run / name).symlink_to(victim)
    p = trainer(run, "--resume", "--set", "max_steps=3")
    _, err = p.communicate(timeout=300)
    assert p.returncode != 0 and f"{run / name}: refused: a symbolic link" in err, err
    assert {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()} == before


def test_a_linked_checkpoint_is_never_resumed_served_or_evaluated(base_run, tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(base_run, run)
    shutil.copytree(base_run, other)
    (run / "checkpoints" / "step_000009").symlink_to(other / "checkpoints" / "step_000002")
    for cmd in (["serve"], ["eval", "--data", os.devnull]):
        r = _grpo(*cmd, "--checkpoint", str(run), cwd=tmp_path, stdin="")
        assert r.returncode != 0 and "step_000009" in r.stderr and "symbolic link" in r.stderr, r.stderr
    p = trainer(run, "--resume", "--set", "max_steps=3")
    _, err = p.communicate(timeout=300)
    assert p.returncode != 0 and "step_000009: refused: a symbolic link" in err


def test_checkpoint_weights_are_read_from_safetensors_only(base_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    ckpt = run / "checkpoints" / "step_000002"
    torch.save(load_file(ckpt / "model.safetensors"), ckpt / "pytorch_model.bin")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "checksums.json").unlink()
    r = _grpo("eval", "--checkpoint", str(ckpt), "--data", os.devnull, cwd=tmp_path)
    assert r.returncode != 0 and "safetensors" in r.stderr, r.stderr


def test_import_trl_refuses_a_linked_file_in_a_trl_checkpoint(tmp_path):
    out = tmp_path / "trl"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": []}))
    (out / "checkpoint-2" / "config.json").write_text("{}")
    (tmp_path / "secret.json").write_text('{"secret": 1}')
    (out / "checkpoint-2" / "special_tokens_map.json").symlink_to(tmp_path / "secret.json")
    r = _grpo("import-trl", str(out), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode != 0 and "special_tokens_map.json: refused: a symbolic link" in r.stderr, r.stderr
    assert not list((tmp_path / "run").rglob("special_tokens_map.json"))


# ---------------------------------------------------------------------------------------------- one writer
def test_a_second_writer_is_refused_and_a_killed_writer_leaves_no_lock(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    first = trainer(run, "--resume", "--set", "max_steps=400", "--set", "save_steps=0", "--set", "log_samples_steps=0")
    try:
        wait_for(lambda: json.loads((run / "status.json").read_text()).get("pid") == first.pid, 120, first)
        second = trainer(run, "--resume", "--set", "max_steps=5")
        _, err = second.communicate(timeout=120)
        assert second.returncode != 0, err
        assert f"is being written by another process (pid {first.pid} on " in err
        assert first.poll() is None and json.loads((run / "status.json").read_text())["pid"] == first.pid
    finally:
        first.kill()
        first.wait()
    third = trainer(run, "--resume", "--set", "max_steps=3")  # SIGKILL released the lock
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("setting", ["task=tests_task.jsonl", "seed=7", "model=OTHER"])
def test_resume_refuses_a_different_run_by_key_and_keeps_config(base_run, tmp_path, setting):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    saved = (run / "config.json").read_bytes()
    key = setting.partition("=")[0]
    p = trainer(run, "--resume", "--set", setting)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and f"would change what this run trains: setting '{key}'" in err, err
    assert "--allow-changed-settings" in err and (run / "config.json").read_bytes() == saved


def test_resume_may_change_the_schedule_and_config_keeps_the_history(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    p = trainer(run, "--resume", "--set", "max_steps=3", "--set", "eval_steps=2")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    p = trainer(run, "--resume", "--set", "max_steps=4", "--set", "seed=5", "--allow-changed-settings")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["max_steps"] == 4 and cfg["seed"] == 5
    first, second = cfg["history"]
    assert first["resumed_from"] == 2 and first["changed"] == {"max_steps": {"from": 2, "to": 3},
                                                                "eval_steps": {"from": 0, "to": 2}}
    assert second["resumed_from"] == 3 and second["changed"] == {"max_steps": {"from": 3, "to": 4},
                                                                 "seed": {"from": 0, "to": 5}}
    assert second["time"] >= first["time"] > time.time() - 3600
