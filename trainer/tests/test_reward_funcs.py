"""TRL-style reward functions (`reward_funcs`, `reward_weights`): the same functions give the same rewards
through TRL's own GRPOTrainer and through ours; their components reach samples.jsonl and metrics.jsonl (and
report_to's TensorBoard and W&B files); the divergence flag; `check-rewards`."""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo import cli, components, config, plugins, records
from grpo.rewards import Rewarder
from grpo.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import trl_rewards  # noqa: E402

FUNCS = "trl_rewards:format_reward,trl_rewards:correctness,trl_rewards:length_penalty,trl_rewards:async_digits," \
        "trl_rewards:logs_metric"
WEIGHTS = [0.5, 2.0, 1.0, 0.25, 1.0]
COMPLETIONS = ["<think>6*7</think> <answer>$42$</answer>", "The answer is $\\frac{1}{2}$", "x = 3, so 3",
               "<think>hmm</think><answer>7</answer>", "", "I do not know at all, honestly, no idea"]
SOLUTIONS = ["$42$", "$\\frac{1}{2}$", "$3$", "$8$", "$1$", "no parseable answer here"]
IDS = [[5] * 3, [5] * 9, [5] * 12, [5] * 20, [], [5] * 8]


@pytest.fixture(scope="module")
def trl_trainer(tiny_dirs, tmp_path_factory):
    """A real TRL GRPOTrainer on a tiny random Qwen2, with the fixture's functions and weights."""
    import datasets
    import trl

    args = trl.GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), max_steps=1, num_generations=2,
                          per_device_train_batch_size=2, reward_weights=WEIGHTS, use_cpu=True, bf16=False,
                          report_to="none", disable_tqdm=True, dataloader_num_workers=0,
                          model_init_kwargs={"dtype": "float32", "attn_implementation": "sdpa"})
    train = datasets.Dataset.from_list([{"prompt": "q", "solution": "$1$"}] * 4)
    fns = [getattr(trl_rewards, spec.split(":")[1]) for spec in FUNCS.split(",")]
    t = trl.GRPOTrainer(model=tiny_dirs["qwen2"], reward_funcs=fns, args=args, train_dataset=train)
    t.state.global_step = 2  # length_penalty reads trainer_state
    return t


def trl_rewards_of(trainer, prompts, completions, inputs):
    """TRL's own per-function rewards and its weighted nansum (GRPOTrainer._generate_and_score_completions)."""
    trainer._pending_metrics.clear()
    per_func = trainer._calculate_rewards(inputs, prompts, completions, IDS)
    total = (per_func * trainer.reward_weights.unsqueeze(0)).nansum(dim=1)
    return per_func, total, {k: list(v) for k, v in trainer._pending_metrics.items()}


def ours(prompts, funcs=FUNCS, weights=WEIGHTS, **kw):
    r = Rewarder("math_verify", reward_funcs=funcs, reward_weights=",".join(map(str, weights)))
    return r(["q"] * len(COMPLETIONS), COMPLETIONS, [None] * len(COMPLETIONS), prompts=prompts,
             completion_ids=IDS, columns=[{"solution": s} for s in SOLUTIONS], step=2, **kw)


def as_table(scored) -> torch.Tensor:
    return torch.tensor([[math.nan if v is None else v for v in col] for col in scored.components.values()],
                        dtype=torch.float32).T


@pytest.mark.parametrize("conversational", [False, True])
def test_the_same_functions_give_trls_rewards(trl_trainer, conversational):
    """Five real-shaped functions (a format regex, math-verify against the `solution` column with None where it
    does not apply, a length penalty on completion_ids and trainer_state, an async one, one that calls
    log_metric), weighted: per function and summed, exactly TRL's values. Conversational: TRL's message lists."""
    if conversational:
        prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(len(COMPLETIONS))]
        completions = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    else:
        prompts, completions = [f"question {i}\n" for i in range(len(COMPLETIONS))], COMPLETIONS
    inputs = [{"prompt": p, "solution": s} for p, s in zip(prompts, SOLUTIONS)]
    per_func, total, logged = trl_rewards_of(trl_trainer, prompts, completions, inputs)
    scored = ours(prompts)
    assert list(scored.components) == trl_trainer.reward_func_names
    torch.testing.assert_close(as_table(scored), per_func, rtol=0, atol=0, equal_nan=True)
    assert torch.tensor(scored.rewards, dtype=torch.float32).tolist() == total.tolist()
    assert scored.metrics == logged and scored.errors == []
    # the case is real: the format, the correctness (None included) and the length terms all vary
    assert scored.components["format_reward"] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert scored.components["correctness"][:3] == [1.0, 1.0, 1.0] and scored.components["correctness"][5] is None
    assert scored.components["length_penalty"][3] == pytest.approx(-0.24)  # (20 − 8) × 0.01 × 2 (global_step ≥ 1)


def test_a_completion_no_function_scores_counts_zero_as_in_trls_sum(trl_trainer):
    funcs = "trl_rewards:correctness,trl_rewards:only_short"
    t = trl_trainer
    saved = (t.reward_funcs, t.reward_func_names, t.reward_processing_classes, t.reward_weights)
    t.reward_funcs, t.reward_func_names = [trl_rewards.correctness, trl_rewards.only_short], ["correctness", "only_short"]
    t.reward_processing_classes, t.reward_weights = [None, None], torch.tensor([1.0, 3.0])
    try:
        prompts = ["p"] * len(COMPLETIONS)
        per_func, total, _ = trl_rewards_of(t, prompts, COMPLETIONS, [{"prompt": "p", "solution": s} for s in SOLUTIONS])
    finally:
        t.reward_funcs, t.reward_func_names, t.reward_processing_classes, t.reward_weights = saved
    scored = ours(prompts, funcs, [1.0, 3.0])
    assert torch.isnan(per_func[5]).all()  # the last completion: long, and its solution does not parse
    assert scored.components["correctness"][5] is None and scored.components["only_short"][5] is None
    torch.testing.assert_close(as_table(scored), per_func, rtol=0, atol=0, equal_nan=True)
    assert scored.rewards == total.tolist() and scored.rewards[5] == 0.0


def test_dataset_columns_trainer_state_and_the_callbacks_reach_the_function():
    trl_rewards.CALLS.clear()
    r = Rewarder("number", reward_funcs="trl_rewards:columns_seen,accuracy")
    s = r(["1+1", "2+2"], ["#### 2", "#### 5"], ["2", "4"], prompts=["1+1\n", "2+2\n"], completion_ids=[[1], [2]],
          columns=[{"question": "1+1", "answer": "#### 2", "level": 1}, {"question": "2+2", "answer": "#### 4", "level": 3}],
          step=7, max_steps=9)
    (kw,) = trl_rewards.CALLS
    assert kw["prompts"] == ["1+1\n", "2+2\n"] and kw["completion_ids"] == [[1], [2]]
    assert kw["question"] == ["1+1", "2+2"] and kw["answer"] == ["#### 2", "#### 4"] and kw["level"] == [1, 3]
    assert kw["trainer_state"].global_step == 7 and kw["trainer_state"].max_steps == 9
    assert callable(kw["log_extra"]) and callable(kw["log_metric"])
    assert s.components == {"columns_seen": [0.0, 0.0], "accuracy": [1.0, 0.0]} and s.rewards == [1.0, 0.0]
    assert s.correct == [True, False]


def test_a_failing_function_is_a_reward_error_for_its_samples_only():
    r = Rewarder("number", reward_funcs="trl_rewards:fails_on_x,trl_rewards:format_reward", reward_weights="1,2")
    s = r(["q"] * 3, ["ab", "xy", "<think>a</think><answer>1</answer>"], ["1"] * 3, completion_ids=[[1]] * 3)
    assert s.components["fails_on_x"] == [1.0, None, 1.0]
    assert s.rewards == [1.0, 0.0, 3.0]
    assert s.errors == ["fails_on_x: ValueError: cannot score x"]


def test_bad_reward_settings_name_the_setting(tmp_path):
    with pytest.raises(config.ConfigError, match="setting 'reward_weights' has 1 weights for 2"):
        config.build_config({}, ["reward_funcs=accuracy,m:f", "reward_weights=1"])
    with pytest.raises(config.ConfigError, match="'reward_funcs' and 'reward_function' cannot both"):
        config.build_config({}, ["reward_funcs=accuracy", "reward_function=m:f"])
    with pytest.raises(config.ConfigError, match="'reward_funcs': 'format' is neither"):
        config.build_config({}, ["reward_funcs=format"])
    with pytest.raises(config.ConfigError, match="reward = outcome"):
        config.build_config({}, ["reward_funcs=accuracy", "reward=process"])
    with pytest.raises(config.ConfigError, match="setting 'report_to': unknown target 'mlflow'"):
        config.build_config({}, ["report_to=mlflow"])
    assert config.report_targets("tensorboard, wandb") == ["tensorboard", "wandb"]
    with pytest.raises(ValueError, match="two functions are named 'format_reward'"):
        Rewarder(reward_funcs="trl_rewards:format_reward,trl_rewards:format_reward")


def test_a_run_directory_never_supplies_a_reward_function(tmp_path, monkeypatch):
    run = tmp_path / "shared_run"
    run.mkdir()
    (run / "status.json").write_text("{}")
    (run / "payload.py").write_text("def r(completions, **kw):\n    return [1.0] * len(completions)\n")
    monkeypatch.syspath_prepend(str(run))
    cfg = config.build_config({}, ["reward_funcs=accuracy, payload:r"])
    assert [(c.setting, c.spec) for c in plugins.named_code(cfg)] == [("reward_funcs", "payload:r")]
    with pytest.raises(plugins.UntrustedCode, match="setting 'reward_funcs'.*inside the run directory"):
        Rewarder(reward_funcs="accuracy,payload:r", run_dir=run)
    assert "payload" not in sys.modules
    with pytest.raises(plugins.UntrustedCode, match="standard-library"):
        Rewarder(reward_funcs="os:getcwd")


# ------------------------------------------------------------------------------------------ divergence
def hackable_run(steps: int, hack: bool, seed: int = 0) -> list[dict]:
    """Metrics rows of a simulated run scored by the real functions: each step 32 completions whose chance of
    the <think>/<answer> format climbs from 0.1 to 0.9; with `hack`, formatted completions give up on the
    answer, so correctness falls as the format rises; without, both climb."""
    rng = random.Random(seed)
    r = Rewarder("math_verify", reward_funcs="trl_rewards:format_reward,trl_rewards:correctness")
    rows = []
    for step in range(steps):
        p_format = 0.1 + 0.8 * step / (steps - 1)
        texts = []
        for _ in range(32):
            formatted = rng.random() < p_format
            right = rng.random() < (0.7 * (1 - p_format) if hack else 0.2 + 0.5 * p_format)
            answer = "42" if right else "41"
            texts.append(f"<think>work</think><answer>${answer}$</answer>" if formatted else f"so ${answer}$")
        s = r(["q"] * 32, texts, [None] * 32, completion_ids=[[0]] * 32, columns=[{"solution": "$42$"}] * 32)
        rows.append({"step": step + 1, **components.step_metrics(s.components)})
    return rows


def test_divergence_fires_on_a_hackable_reward_and_not_on_a_healthy_run():
    hacked = components.divergence(components.series_from_rows(hackable_run(30, hack=True)), window=20)
    assert hacked.diverging and hacked.rising == ["format_reward"] and hacked.falling == ["correctness"]
    assert "format_reward rising while correctness falling" == hacked.describe()
    healthy = components.divergence(components.series_from_rows(hackable_run(30, hack=False)), window=20)
    assert not healthy.diverging and healthy.rising == ["format_reward", "correctness"]


def test_divergence_on_flat_noise_is_rare_and_short_series_say_nothing():
    rng = random.Random(1)
    flags = sum(components.divergence({"a": [rng.gauss(0, 1) for _ in range(20)],
                                       "b": [rng.gauss(0.5, 0.2) for _ in range(20)]}, window=20).diverging
                for _ in range(500))
    assert flags <= 2  # both components must clear |t| > 3, in opposite directions
    assert not components.divergence({"a": [0, 1, 2, 3], "b": [3, 2, 1, 0]}, window=20).diverging  # < 5 points
    exact = components.divergence({"a": [0, 1, 2, 3, 4, None, 6], "b": [1.0] * 7, "c": [6, 5, 4, 3, 2, 1, 0]})
    assert exact.diverging and exact.rising == ["a"] and exact.falling == ["c"] and exact.trends["b"].t == 0
    with pytest.raises(ValueError, match="window"):
        components.divergence({"a": [1.0]}, window=2)


def test_component_metrics_are_trls_nanmean_and_nanstd():
    m = components.step_metrics({"f": [1.0, None, 0.0, 1.0], "g": [None, None, 2.0, None]}, {"custom/x": [1.0, 3.0]})
    assert m["rewards/f/mean"] == pytest.approx(2 / 3) and m["rewards/f/std"] == pytest.approx(0.57735, abs=1e-5)
    assert m["rewards/g/mean"] == 2.0 and math.isnan(m["rewards/g/std"]) and m["custom/x"] == 2.0


# ------------------------------------------------------------------------------------------ a real run
def _grpo(*args, env=None, timeout=600):
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(FIXTURES)]), **(env or {})}
    return subprocess.run([sys.executable, "-m", "grpo", *args], capture_output=True, text=True, env=e,
                          timeout=timeout)


SMALL = ["max_steps=3", "sft_steps=0", "eval_size=4", "eval_steps=0", "eval_samples=0", "log_samples_steps=1",
         "onnx_export=false", "questions_per_step=2", "num_generations=4", "max_completion_length=16",
         "answer_fallback=on", "save_steps=0", "replay_total_limit=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three GRPO steps with two reward functions (the verifier's accuracy and a length penalty on
    completion_ids), reporting to TensorBoard and to W&B offline."""
    root = tmp_path_factory.mktemp("rewards")
    p = _grpo("train", "--run-dir", str(root / "run"), *[a for s in SMALL for a in ("--set", s)],
              "--set", "reward_funcs=accuracy,trl_rewards:length_penalty", "--set", "reward_weights=1,0.5",
              "--set", "report_to=tensorboard,wandb",
              env={"WANDB_MODE": "offline", "WANDB_PROJECT": "grpo-test", "WANDB_SILENT": "true",
                   "WANDB_DIR": str(root), "WANDB_CACHE_DIR": str(root / "wandb-cache"),
                   "WANDB_CONFIG_DIR": str(root / "wandb-config")})
    assert p.returncode == 0, p.stderr[-3000:]
    return root / "run"


def test_components_reach_samples_and_metrics(run):
    rows, bad = read_jsonl(run / "metrics.jsonl")
    assert bad == 0 and [r["step"] for r in rows] == [1, 2, 3]
    groups, _ = read_jsonl(run / "samples.jsonl")
    assert [g["step"] for g in groups] == [1, 2, 3]
    for g in groups:
        assert records.validate("GroupRecord", g) == []
        funcs = g["reward_functions"]
        assert list(funcs) == ["accuracy", "length_penalty"]
        assert funcs["accuracy"] == [1.0 if c else 0.0 for c in g["correct"]]
        n_tokens = [len(t["text"]) for t in g["tokens"]]
        scale = 2.0 if g["step"] > 1 else 1.0  # trainer_state.global_step: the steps done before this one
        assert funcs["length_penalty"] == pytest.approx([-0.01 * scale * max(0, n - 8) for n in n_tokens])
        assert g["rewards"] == pytest.approx([a + 0.5 * b for a, b in zip(funcs["accuracy"], funcs["length_penalty"])])
    for row in rows:
        assert records.validate("MetricsRow", row) == []
        assert {"rewards/accuracy/mean", "rewards/accuracy/std", "rewards/length_penalty/mean",
                "rewards/length_penalty/std"} <= set(row)
        assert row["rewards/accuracy/mean"] == pytest.approx(row["accuracy"])
    # the samples of a step are a part of its completions: their penalty mean is the step's only when logged whole
    assert rows[0]["reward/mean"] == pytest.approx(rows[0]["rewards/accuracy/mean"]
                                                   + 0.5 * rows[0]["rewards/length_penalty/mean"], abs=1e-6)


def test_a_case_saved_from_a_logged_group_gets_the_reward_training_gave(run, tmp_path, capsys):
    """What "Save as reward test" writes (question, answer, completion, its logged tokens, truncated, step,
    expected = the logged reward) re-checks to that reward: its completion_ids are rebuilt exactly as training
    passed them (EOS included), so a length penalty is not a token off."""
    groups, _ = read_jsonl(run / "samples.jsonl")
    cases = tmp_path / "saved.jsonl"
    lines = [{"question": g["question"], "answer": g["answer"], "completion": c, "truncated": t, "step": g["step"] - 1,
              "completion_tokens": k["text"], "expected": r}
             for g in groups for c, t, k, r in zip(g["completions"], g["truncated"], g["tokens"], g["rewards"])]
    assert any(not c["truncated"] for c in lines)  # completions that ended with EOS are among them
    cases.write_text("".join(json.dumps(c) + "\n" for c in lines))
    code = cli.main(["check-rewards", str(cases), "--run", str(run), "--tolerance", "1e-5", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in report["results"] if not r["ok"]][:3]
    assert report["agree"] == len(lines)


def test_tensorboard_event_files_read_back_with_tensorboards_reader(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    rows, _ = read_jsonl(run / "metrics.jsonl")
    assert {"reward/mean", "kl", "rewards/accuracy/mean", "rewards/length_penalty/mean"} <= tags
    for tag in ("reward/mean", "rewards/length_penalty/mean"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([r[tag] for r in rows], abs=1e-6)


def wandb_records(path: Path):
    """The records of a W&B transaction log (`run-<id>.wandb`): a 7-byte header (":W&B", 0xBEE1, version 0),
    then LevelDB-log framing in 32 KiB blocks (crc32, length, type: full/first/middle/last) around protobuf
    `Record`s. wandb 0.31 ships no Python reader of its own (its core is Go)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1 and data[6] == 0
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # a block's zero padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # full, or the last piece
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield rec
        else:
            pending = chunk if kind == 2 else pending + chunk


def test_an_offline_wandb_run_is_written_and_parsed(run):
    (offline,) = list((run / "wandb").glob("offline-run-*"))
    (log_file,) = list(offline.glob("run-*.wandb"))
    recs = list(wandb_records(log_file))
    (run_rec,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
    assert run_rec.project == "grpo-test" and run_rec.display_name == "run"
    config_seen = {i.key: json.loads(i.value_json) for i in run_rec.config.update}
    assert config_seen["reward_funcs"] == "accuracy,trl_rewards:length_penalty"
    history = [(r.history.step.num, {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
               for r in recs if r.WhichOneof("record_type") == "history"]
    rows, _ = read_jsonl(run / "metrics.jsonl")
    assert [step for step, _ in history] == [1, 2, 3]
    for (_, h), row in zip(history, rows):
        for key in ("rewards/accuracy/mean", "rewards/length_penalty/mean", "reward/mean", "kl", "loss"):
            assert h[key] == pytest.approx(row[key])


def test_a_missing_report_to_package_names_the_extra(tmp_path):
    pytest.importorskip("tensorboard")
    try:
        import trackio  # noqa: F401
        pytest.skip("trackio is installed here")
    except ImportError:
        pass
    p = _grpo("train", "--run-dir", str(tmp_path / "r"), "--set", "report_to=trackio", "--set", "sft_steps=0")
    assert p.returncode != 0 and "pip install 'grpo-studio[trackio]'" in p.stderr
    assert not (tmp_path / "r" / "status.json").exists()  # refused before the run directory was touched


# ------------------------------------------------------------------------------------------ check-rewards
def test_check_rewards_reports_the_cases_that_now_disagree(tmp_path, capsys):
    cases = tmp_path / "reward_tests.jsonl"
    lines = [
        {"question": "6*7", "answer": "42", "completion": "<think>6*7</think><answer>$42$</answer>", "expected": 1.5,
         "solution": "$42$", "rewards": {"format_reward": 1.0, "correctness": 1.0}},
        # a format hack: the reward a user says it should get (0) is not what the functions give (0.5)
        {"question": "6*7", "answer": "42", "completion": "<think>?</think><answer>$41$</answer>", "expected": 0.0,
         "solution": "$42$", "note": "format without the answer"},
        {"question": "6*7", "answer": "42", "prompt": [{"role": "user", "content": "6*7?"}], "completion": "42",
         "expected": 1.0, "solution": "$42$"},
    ]
    cases.write_text("\n".join(json.dumps(c) for c in lines) + "\n{not json\n" + json.dumps({"completion": 1}) + "\n")
    settings = ["--set", "reward_funcs=trl_rewards:format_reward,trl_rewards:correctness",
                "--set", "reward_weights=0.5,1"]
    assert cli.main(["check-rewards", str(cases), *settings, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["cases"], report["agree"], report["disagree"], report["skipped"]) == (3, 2, 1, 2)
    (bad,) = [r for r in report["results"] if not r["ok"]]
    assert bad["line"] == 2 and bad["reward"] == 0.5 and bad["components"] == {"format_reward": 1.0, "correctness": 0.0}
    # fixed expectations: every case agrees
    lines[1]["expected"] = 0.5
    cases.write_text("\n".join(json.dumps(c) for c in lines) + "\n")
    assert cli.main(["check-rewards", str(cases), *settings]) == 0
    assert "3 of 3 cases agree, 0 disagree" in capsys.readouterr().err
    # bad settings, a missing file, a file with no case: 2
    assert cli.main(["check-rewards", str(cases), "--set", "reward_funcs=nope"]) == 2
    assert cli.main(["check-rewards", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "empty.jsonl").write_text("\n")
    assert cli.main(["check-rewards", str(tmp_path / "empty.jsonl")]) == 2
    assert "no usable reward test case" in capsys.readouterr().err


def test_check_rewards_as_a_command(tmp_path):
    cases = tmp_path / "t.jsonl"
    cases.write_text(json.dumps({"question": "1+1", "answer": "2", "completion": "#### 2", "expected": 0.0}) + "\n")
    p = _grpo("check-rewards", str(cases), "--set", "reward_funcs=accuracy", timeout=300)
    assert p.returncode == 1 and "line 1: reward 1, expected 0 (accuracy=1)" in p.stderr
