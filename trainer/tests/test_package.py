"""The trainer as a pip package (trainer/pyproject.toml): a wheel built from ./trainer installs into a fresh
venv and gives `grpo-studio` and `python -m grpo` without PYTHONPATH. Offline: the wheel is built with this
interpreter's setuptools (no build isolation) and installed with --no-index --no-deps."""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

TRAINER = Path(__file__).resolve().parents[1]


def run(*args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_wheel_installs_into_a_fresh_venv(tmp_path):
    # Build from a copy so setuptools' build/ and *.egg-info stay out of the repository.
    src = tmp_path / "src"
    shutil.copytree(TRAINER, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp_path / "wheels", src)
    (wheel,) = (tmp_path / "wheels").glob("grpo_studio-*.whl")

    # One source of truth: the wheel's dependencies are requirements.txt's pins, line for line.
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = {line.split(":", 1)[1].strip().replace(" ", "")
                    for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")}
        assert "grpo/tasks/arith.py" in z.namelist()
    pinned = {line.strip().replace(" ", "") for line in (TRAINER / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")}
    base = {r for r in requires if ";extra==" not in r}
    assert base == pinned
    # report_to's targets are optional extras (grpo-studio[tensorboard|wandb|trackio]), pinned, never hard deps
    extras = {r.split(";extra==")[1].strip('"'): r.split(";")[0] for r in requires if ";extra==" in r}
    assert set(extras) == {"tensorboard", "wandb", "trackio"} and all("==" in r for r in extras.values())

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    run(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run(py, "-c", "import grpo; print(grpo.__file__)", env=env, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(env_dir), where
    for cmd in ([bindir / "grpo-studio", "train", "--help"], [py, "-m", "grpo", "train", "--help"]):
        out = run(*cmd, env=env, cwd=tmp_path).stdout
        assert "--run-dir" in out and "--resume" in out, out
