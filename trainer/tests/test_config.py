import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.config import ConfigError, build_config, schema

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_overrides():
    cfg = build_config({"beta": 0.1}, ["num_generations=4", "loss_type=dapo", "epsilon_high=0.28", "task=arith"])
    assert (cfg.beta, cfg.num_generations, cfg.loss_type, cfg.eps_high) == (0.1, 4, "dapo", 0.28)
    assert build_config().eps_high == build_config().epsilon


@pytest.mark.parametrize("overrides,key", [
    (["bta=0.1"], "bta"), (["beta=-0.1"], "beta"), (["num_generations=1"], "num_generations"),
    (["num_generations=2.5"], "num_generations"), (["learning_rate=abc"], "learning_rate"),
    (["loss_type=ppo"], "loss_type"), (["epsilon=0"], "epsilon"), (["top_p=1.5"], "top_p"),
    (["scale_rewards=always"], "scale_rewards"), (["max_steps=true"], "max_steps"),
    (["reward_function=nocolon"], "reward_function"),
])
def test_bad_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        build_config({}, overrides)


def _float_settings() -> list[str]:
    return [s["key"] for s in schema() if s["type"] == "float"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_floats_are_refused_for_every_float_setting(value):
    assert len(_float_settings()) >= 10
    for key in _float_settings():
        with pytest.raises(ConfigError, match=f"'{key}' must be a finite number"):
            build_config({}, [f"{key}={value}"])
        with pytest.raises(ConfigError, match=f"'{key}'"):  # the same from a config file
            build_config({key: float(value.replace("Infinity", "inf"))})


@pytest.mark.parametrize("value", ["1e300", "9007199254740993", "-1e20"])
def test_absurd_whole_numbers_are_refused(value):
    with pytest.raises(ConfigError, match="'seed'"):
        build_config({}, [f"seed={value}"])


def test_cli_refuses_nan_before_any_work(tmp_path):
    p = run_cli("train", "--run-dir", str(tmp_path / "run"), "--set", "beta=NaN", cwd=tmp_path)
    assert p.returncode == 2 and "'beta' must be a finite number" in p.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'num_generations'"):
        build_config({"num_generation": 8})


def test_schema_lists_every_setting():
    keys = {s["key"] for s in schema()}
    assert {"num_generations", "beta", "epsilon", "loss_type", "scale_rewards", "num_iterations"} <= keys


def run_cli(*args, cwd):
    env = {"PYTHONPATH": str(ROOT / "trainer"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "grpo", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def test_cli_rejects_bad_setting_before_any_work(tmp_path):
    run_dir = tmp_path / "run"
    p = run_cli("train", "--run-dir", str(run_dir), "--set", "beta=-1", cwd=tmp_path)
    assert p.returncode == 2
    assert "'beta'" in p.stderr and p.stdout == ""
    assert not run_dir.exists()  # nothing was created


def test_cli_rejects_bad_config_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"num_generations": 1}))
    p = run_cli("train", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2 and "'num_generations'" in p.stderr
    cfg.write_text("{not json")
    p = run_cli("train", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2 and "not valid JSON" in p.stderr


def test_config_schema_command(tmp_path):
    p = run_cli("config-schema", cwd=tmp_path)
    assert p.returncode == 0
    assert any(s["key"] == "beta" and s["default"] == 0.04 for s in json.loads(p.stdout))


def test_settings_are_validated_without_torch():
    """Checking a config (the extension does it before a launch, `user-code` reads it) imports no torch."""
    code = ("import sys; from grpo import config; config.build_config(None, ['eval_k=1,4', 'beta=0.1']); "
            "config.parse_ks('1,4,8'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "False"
