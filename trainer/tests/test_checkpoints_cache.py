"""Checkpoints that cost what they should (SFT cadence, background ONNX export, save_total_limit) and the SFT
start trained once (sftcache.py): a hit gives the same start and the same run, damage is retrained, kills
leave nothing half-written visible."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from grpo import sftcache
from grpo.config import build_config
from grpo.rundir import prune_plan, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["sft_steps=20", "sft_batch_size=16", "max_steps=3", "eval_size=16", "eval_samples=2", "eval_k=1,2",
         "questions_per_step=2", "num_generations=4", "max_completion_length=32", "eval_steps=0", "log_samples_steps=0"]


def train(run: Path, cache: Path, *sets: str, wait: bool = True, resume: bool = False):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "GRPO_CACHE_DIR": str(cache)}
    args = [sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet", *(["--resume"] if resume else [])]
    for s in ([] if resume else SMALL) + list(sets):
        args += ["--set", s]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return p
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return p


def events(run: Path, kind: str | None = None) -> list[dict]:
    rows = read_jsonl(run / "events.jsonl")[0]
    return [e for e in rows if kind is None or e["kind"] == kind]


def names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


# ------------------------------------------------------------------------------------------ pruning
def test_prune_plan_keeps_the_start_the_newest_and_what_is_in_use():
    sft = ["sft_000500", "sft_001000", "sft_001500"]
    grpo = ["step_000000", "step_000010", "step_000020", "step_000030"]
    assert prune_plan(sft + grpo, 0) == []                      # 0: keep all
    assert prune_plan(sft + grpo, 10) == []
    assert prune_plan(sft + grpo, 3) == sft + ["step_000010"]   # start, newest, then the newest others
    assert prune_plan(sft + grpo, 1) == sft + ["step_000010", "step_000020"]  # start and newest, past the limit
    assert prune_plan(sft + grpo, 2, keep={"step_000010"}) == sft + ["step_000020"]  # an export reads it
    assert prune_plan(sft, 2) == ["sft_000500"]                 # during SFT: the newest SFT ones
    assert prune_plan(sft + ["step_000000"], 2) == sft[:2]      # right after SFT: the start and its SFT end


# ------------------------------------------------------------------------------------------ the key
def test_the_key_follows_sft_settings_and_data_not_grpo_settings(tmp_path):
    cpu = torch.device("cpu")
    key = lambda *sets: sftcache.key(sftcache.key_inputs(build_config(None, list(sets)), cpu)[0])  # noqa: E731
    base = key()
    for grpo_only in ("beta=0.1", "max_steps=7", "learning_rate=0.5", "save_steps=2", "onnx_export=false",
                      "num_generations=4", "sft_save_steps=3", "save_total_limit=0"):
        assert key(grpo_only) == base, grpo_only
    for sft_setting in ("sft_steps=10", "seed=1", "sft_learning_rate=0.1", "sft_batch_size=8", "arith_max_ops=3",
                        "eval_size=20", "max_completion_length=20", "sft_direct_fraction=0.5", "chat_template=off"):
        assert key(sft_setting) != base, sft_setting
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(20)))
    with_file = key(f"task={data}")
    copy = tmp_path / "other" / "d.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(data.read_bytes())
    assert key(f"task={copy}") == with_file  # the content, not the path
    data.write_text(data.read_text() + json.dumps({"question": "9+9", "answer": "18"}) + "\n")
    assert key(f"task={data}") != with_file
    inputs, why = sftcache.key_inputs(build_config(None, ["task=some.module:make_task"]), cpu)
    assert inputs is None and "code" in why  # a user task's code cannot be keyed: not cached


def test_the_location(monkeypatch, tmp_path):
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "a"))
    assert sftcache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("GRPO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert sftcache.cache_dir() == tmp_path / "x" / "grpo-studio"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert sftcache.cache_dir() == Path.home() / ".cache" / "grpo-studio"


# ------------------------------------------------------------------------------------------ runs
def test_a_hit_skips_sft_and_gives_the_same_start_and_run(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    a, b = tmp_path / "a", tmp_path / "b"
    train(a, cache, "sft_save_steps=10", "save_steps=1", "save_total_limit=0")
    assert [e["action"] for e in events(a, "sft_cache")] == ["miss", "stored"]
    entry = Path(events(a, "sft_cache")[-1]["path"])
    assert entry.parent.parent == cache and sorted(p.name for p in entry.iterdir()) == [
        "checksums.json", "rng.safetensors", "start.json", "weights.safetensors"]
    assert names(a) == ["sft_000010", "sft_000020", "step_000000", "step_000001", "step_000002", "step_000003"]
    for n in names(a):  # only what the editor opens is exported: the start and GRPO checkpoints, never sft_*
        onnx = a / "checkpoints" / n / "onnx"
        if n.startswith("sft_"):
            assert not onnx.exists(), n
        elif n in ("step_000000", "step_000003"):  # the start and the newest always (1 and 2 may be skipped)
            assert (onnx / "manifest.json").is_file(), n
        assert not (a / "checkpoints" / n / "onnx.tmp").exists()
    manifest = json.loads((a / "checkpoints/step_000003/onnx/manifest.json").read_text())
    assert manifest["checkpoint"] == "checkpoints/step_000003" and manifest["step"] == 3

    t0 = time.time()
    train(b, cache, "beta=0.1", "save_steps=1", "save_total_limit=2")  # a GRPO-only change: the same start
    assert [e["action"] for e in events(b, "sft_cache")] == ["hit"]
    assert (a / "checkpoints/step_000000/model.safetensors").read_bytes() == \
        (b / "checkpoints/step_000000/model.safetensors").read_bytes()
    strip = lambda es: [{k: v for k, v in e.items() if k != "time"} for e in es]  # noqa: E731
    assert strip(events(b, "eval"))[0] == strip(events(a, "eval"))[0]  # the step-0 evaluation, from the cache
    kinds = lambda r: [e["kind"] for e in events(r) if e["kind"] not in ("sft_cache", "checkpoint")]  # noqa: E731
    assert kinds(a) == kinds(b)  # the same run shape: phase sft, eval, phase grpo, …
    assert names(b) == ["step_000000", "step_000003"]  # save_total_limit=2: the start and the newest
    # the same GRPO too, but for β: rewards of the first step (sampled before any update) are equal
    ra, rb = read_jsonl(a / "metrics.jsonl")[0], read_jsonl(b / "metrics.jsonl")[0]
    assert ra[0]["reward/mean"] == rb[0]["reward/mean"] and ra[0]["completion_length/mean"] == rb[0]["completion_length/mean"]
    print(f"cached run: {time.time() - t0:.1f}s")

    # a damaged entry is set aside with a warning, SFT trains again and stores a fresh one
    w = entry / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    c = tmp_path / "c"
    train(c, cache, "max_steps=0")
    assert [e["action"] for e in events(c, "sft_cache")] == ["miss", "stored"]
    assert [e["code"] for e in events(c, "warning")] == ["sft_cache_damaged"]
    assert (c / "checkpoints/step_000000/model.safetensors").read_bytes() == \
        (a / "checkpoints/step_000000/model.safetensors").read_bytes()
    monkeypatch.setenv("GRPO_CACHE_DIR", str(cache))
    assert sftcache.lookup(entry.name, _policy())[0] is not None

    # cache off: SFT trains, nothing is read or written
    d = tmp_path / "d"
    train(d, tmp_path / "other-cache", "max_steps=0", "sft_cache=false")
    assert [(e["action"], e["reason"]) for e in events(d, "sft_cache")] == [("off", "setting 'sft_cache' is false")]
    assert not (tmp_path / "other-cache").exists()


def _policy():
    from grpo import models

    return models.load(models.BUILTIN, 0, torch.device("cpu"))[0]


def test_a_kill_during_a_cache_write_leaves_no_entry(tmp_path):
    """SIGKILL inside store(), after the weights and before the rename: a temp folder, no entry; lookups miss
    and the next store clears the dead writer's folder."""
    code = f"""
import os, signal, torch
from grpo import checkpoint, models, sftcache
policy = models.load(models.BUILTIN, 0, torch.device("cpu"))[0]
checkpoint.write_checksums = lambda d: os.kill(os.getpid(), signal.SIGKILL)
sftcache.store("k" * 32, {{}}, policy, {{"torch": torch.get_rng_state()}}, {{}})
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "GRPO_CACHE_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    left = sorted(q.name for q in (tmp_path / "sft").iterdir())
    assert len(left) == 1 and left[0].startswith("k" * 32 + ".tmp-"), left
    os.environ["GRPO_CACHE_DIR"], old = str(tmp_path), os.environ.get("GRPO_CACHE_DIR")
    try:
        policy = _policy()
        assert sftcache.lookup("k" * 32, policy) == (None, None)
        assert sftcache.store("j" * 32, {}, policy, {"torch": torch.get_rng_state()}, {"data_rng": None}) is not None
        assert sorted(q.name for q in (tmp_path / "sft").iterdir()) == ["j" * 32]  # the dead writer's folder went
    finally:
        os.environ["GRPO_CACHE_DIR"] = old or ""


def test_a_kill_during_an_export_leaves_no_onnx_and_the_run_resumes(tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    p = train(run, cache, "max_steps=400", "save_steps=1", "save_total_limit=3", wait=False)
    try:
        deadline = time.time() + 300
        while not list(run.glob("checkpoints/step_*/onnx.tmp")):
            assert p.poll() is None, p.stderr.read()
            assert time.time() < deadline, "no export started"
            time.sleep(0.05)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    time.sleep(1)  # the worker dies with the trainer (PR_SET_PDEATHSIG)
    mine = f"GRPO_CACHE_DIR={cache}\0".encode()
    for pid in subprocess.run(["pgrep", "-f", "export-onnx --worker"], capture_output=True, text=True).stdout.split():
        try:  # none of ours may live on: it would rename a finished export into place later
            assert mine not in Path(f"/proc/{pid}/environ").read_bytes(), f"worker {pid} outlived its trainer"
        except (FileNotFoundError, PermissionError):
            pass
    assert not [c for c in run.glob("checkpoints/step_*/onnx") if not (c / "manifest.json").is_file()]
    assert list(run.glob("checkpoints/step_*/onnx.tmp"))  # the cut export: invisible to readers
    latest = max(int(c.name[5:]) for c in run.glob("checkpoints/step_*") if c.name[5:].isdigit())
    train(run, cache, f"max_steps={latest + 1}", resume=True)
    assert not list(run.glob("checkpoints/*/onnx.tmp"))
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    for n in ("step_000000", f"step_{latest + 1:06d}"):  # the start and the newest have their exports
        assert (run / "checkpoints" / n / "onnx/manifest.json").is_file(), n
    assert len(names(run)) <= 3 and "step_000000" in names(run)
