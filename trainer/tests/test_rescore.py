"""`rescore`: an edited completion re-scored as training scores a sampled one. On real runs: an unedited
completion of a group training logged gets back exactly its logged reward and the group's logged advantages;
an edit that makes a wrong answer right changes the reward and the group's advantages as the training
function says; the per-token numbers are `score`'s after the question's training prompt; bad input is named.
Answered in-process (the code both `serve` and the live trainer run), by `python -m grpo serve` and by a
live `train` process, and for a subword-tokenizer checkpoint (a tiny random Qwen2 with a chat template)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from child import FIXTURES, Proc

from grpo import context, groups, inspector
from grpo.rewards import Scored
from grpo.tasks import arith

ROOT = Path(__file__).resolve().parents[2]
PER_TOKEN = ("tokens", "offsets", "logp", "ref_logp", "kl")


def rescore(ctx, source, **params):
    return inspector.handle(ctx, source, {"v": 1, "type": "rescore", "id": "t", **params})


def expected_advantages(ctx, rewards: list[float]) -> list[float]:
    """What training's function makes of these rewards (outcome supervision; the batch is not read then)."""
    s = ctx.settings
    _, seq_adv, _ = groups.compute_advantages(ctx.tokenizer, None, Scored(list(rewards), [False] * len(rewards)),
                                              len(rewards), s.reward, s.scale_rewards)
    return [round(float(a), 6) for a in seq_adv]


def _train(run: Path, *sets: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(FIXTURES)])}
    args = [a for s in sets for a in ("--set", s)]
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet", *args],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A real run that logged every step's group: the built-in model under a user reward function (length
    near 12 characters: rewards differ within a group from the first step, so advantages are not all 0)."""
    run = tmp_path_factory.mktemp("logged") / "run"
    _train(run, "sft_steps=10", "max_steps=2", "questions_per_step=2", "num_generations=6", "max_completion_length=32",
           "eval_size=4", "log_samples_steps=1", "save_steps=2", "onnx_export=false",
           "reward_function=length_reward:near_twelve")
    return run


@pytest.fixture(scope="module")
def logged_ctx(logged_run):
    sys.path.insert(0, str(FIXTURES))  # the run's reward function, as the extension's serve finds it
    try:
        yield context.from_checkpoint(logged_run)[:2]
    finally:
        sys.path.remove(str(FIXTURES))


@pytest.fixture(scope="module")
def tiny_ctx(tiny_run):
    """The conftest run (the built-in model after 5 SFT steps; rewards by the number verifier)."""
    return context.from_checkpoint(tiny_run / "checkpoints" / "step_000005")[:2]


def test_an_unedited_completion_gets_back_the_logged_reward_and_advantages(logged_run, logged_ctx):
    ctx, source = logged_ctx
    logged = [json.loads(x) for x in (logged_run / "samples.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and any(len(set(g["advantages"])) > 1 for g in logged)
    for g in logged:
        for i, text in enumerate(g["completions"]):
            if not text:
                continue  # an empty completion is not something one edits
            r = rescore(ctx, source, question=g["question"], completion=text, group=g["completions"], index=i,
                        answer=g["answer"])
            assert r["rewards"] == g["rewards"] and r["advantages"] == g["advantages"]
            assert r["reward"] == g["rewards"][i] and r["advantage"] == g["advantages"][i]
            assert r["prompt"] == g["prompt"] and r["index"] == i and r["step"] == 2
            assert r["token_advantages"] == [r["advantage"]] * len(r["tokens"])


def test_a_reward_hack_edit_is_rewarded_by_the_runs_function(logged_run, logged_ctx):
    """The run rewards length alone: a 12-character edit with no answer at all gets the best reward."""
    ctx, source = logged_ctx
    g = json.loads((logged_run / "samples.jsonl").read_text().splitlines()[-1])
    i = min(range(len(g["rewards"])), key=lambda k: g["rewards"][k])
    r = rescore(ctx, source, question=g["question"], completion="#### nothing", group=g["completions"], index=i)
    rewards = [*g["rewards"][:i], 0.0, *g["rewards"][i + 1:]]
    assert r["reward"] == 0.0 and r["correct"] is False and r["rewards"] == rewards
    assert r["advantages"] == expected_advantages(ctx, rewards) and r["advantage"] == max(r["advantages"])


def test_making_a_wrong_answer_right(tiny_ctx):
    ctx, source = tiny_ctx
    q = "(3+1)*3+4*1"
    g = inspector.handle(ctx, source, {"v": 1, "type": "sample_group", "id": "g", "question": q, "seed": 11,
                                       "num_generations": 6})
    assert g["answer"] == "16" and not any(g["correct"])  # a barely trained model: every answer wrong
    right = arith.worked_solution(q)
    r = rescore(ctx, source, question=q, completion=right, group=g["completions"], index=2)
    rewards = [*g["rewards"][:2], 1.0, *g["rewards"][3:]]
    assert r["reward"] == 1.0 and r["correct"] is True and r["answer"] == "16"
    assert r["rewards"] == rewards and r["advantages"] == expected_advantages(ctx, rewards)
    assert r["advantage"] > 0 and all(a < 0 for k, a in enumerate(r["advantages"]) if k != 2)
    # arith checks the steps: every step of the worked solution is right, and each ends inside the tokens
    assert r["step_rewards"] == [1.0] * len(right.splitlines()) and len(r["step_ends"]) == len(r["step_rewards"])
    assert all(0 <= e < len(r["tokens"]) for e in r["step_ends"])
    # and back: the original text gets back the sampled group's numbers
    back = rescore(ctx, source, question=q, completion=g["completions"][2], group=g["completions"], index=2)
    assert back["rewards"] == g["rewards"] and back["advantages"] == g["advantages"]
    # without a group: a group of one, no advantage
    alone = rescore(ctx, source, question=q, completion=right)
    assert alone["rewards"] == [1.0] and alone["advantages"] == [0.0] and alone["index"] == 0


def test_per_token_numbers_are_scores_after_the_training_prompt(tiny_ctx):
    ctx, source = tiny_ctx
    q, text = "(2+2)*2", "2+2=4\n4*2=9\n#### 9"
    r = rescore(ctx, source, question=q, completion=text)
    s = inspector.score(ctx, text, ctx.prompt(q), source.step)
    assert r["prompt"] == ctx.prompt(q) == q + "\n"
    assert {k: r[k] for k in (*PER_TOKEN, "sequence_kl")} == {k: s[k] for k in (*PER_TOKEN, "sequence_kl")}
    assert r["tokens"] == list(text)  # the first character is scored too: it follows the prompt
    assert r["ratio"] == [round(math.exp(a - b), 6) for a, b in zip(r["logp"], r["ref_logp"])]
    assert any(abs(x - 1) > 1e-3 for x in r["ratio"])  # step 5's policy is not its reference
    assert r["reward"] == 0.0 and r["step_rewards"] == [1.0, 0.0, 0.0]  # 4*2=9 is wrong, and so the answer
    assert r["source"]["step"] == 5 and r["source"]["checkpoint"].endswith("step_000005")


def test_process_supervision_per_token_advantages(tiny_run):
    ctx, source, _ = context.from_checkpoint(tiny_run / "checkpoints" / "step_000005", reward="process")
    q = "(3+1)*3+4*1"
    g = inspector.handle(ctx, source, {"v": 1, "type": "sample_group", "id": "g", "question": q, "seed": 4})
    texts = g["completions"]
    i = next(k for k, t in enumerate(texts) if t)
    same = rescore(ctx, source, question=q, completion=texts[i], group=texts, index=i)
    assert same["rewards"] == g["rewards"] and same["advantages"] == g["advantages"]
    assert same["step_rewards"] == g["step_rewards"][i]
    edited = rescore(ctx, source, question=q, completion=arith.worked_solution(q), group=texts, index=i)
    assert edited["step_rewards"] == [1.0] * 5
    # the per-token advantages are the training function's, each step's reward reaching the tokens before its end
    assert edited["token_advantages"][0] == edited["advantage"] > same["advantage"]
    ends = edited["step_ends"]
    assert len(set(edited["token_advantages"][: ends[0] + 1])) == 1
    assert all(a == 0 for a in edited["token_advantages"][ends[-1] + 1:])


def test_bad_input_is_named(tiny_ctx):
    ctx, source = tiny_ctx

    def error(**params) -> str:
        a = inspector.answer(ctx, source, {"v": 1, "type": "rescore", "id": "e", **params})
        assert a["ok"] is False, a
        return a["error"]

    assert "'completion'" in error(question="1+2", completion="")
    assert "'completion'" in error(question="1+2")
    assert "'question'" in error(completion="3")
    assert "'index'" in error(question="1+2", completion="3", group=["1", "2"], index=2)
    assert "'index'" in error(question="1+2", completion="3", group=["1", "2"])
    assert "'index'" in error(question="1+2", completion="3", index=1)
    assert "'group'" in error(question="1+2", completion="3", group=["1"], index=0)
    assert "'group'" in error(question="1+2", completion="3", group=[1, 2], index=0)
    err = error(question="1+2", completion="3×4")
    assert "completion" in err and "×" in err and "vocabulary" in err
    assert "group[1]" in error(question="1+2", completion="3", group=["1", "2÷"], index=0)
    assert "context of 1024" in error(question="1+2", completion="1+2=3\n" * 200)
    assert "'top_k'" in error(question="1+2", completion="3", top_k=1)


def test_serve_answers_rescore(tiny_run, tiny_ctx):
    ctx, source = tiny_ctx
    q, texts = "7-2*3", ["7-6=1\n#### 1", "#### 5", "7-2=5"]
    want = rescore(ctx, source, question=q, completion="#### 5", group=texts, index=1)
    serve = Proc(["serve", "--checkpoint", str(tiny_run / "checkpoints" / "step_000005")])
    try:
        assert serve.next(lambda m: True)["type"] == "started"
        got = serve.ok("rescore", question=q, completion="#### 5", group=texts, index=1)
        assert "index" in serve.error("rescore", question=q, completion="1", group=texts, index=3)
    finally:
        serve.p.kill()
        serve.p.wait()
    assert got == json.loads(json.dumps(want))
    assert got["rewards"] == [1.0, 0.0, 0.0] and got["advantages"][0] > 0


def test_a_live_trainer_answers_rescore(tmp_path):
    t = Proc(["train", "--run-dir", str(tmp_path / "run"), "--quiet", "--set", "sft_steps=4", "--set", "sft_cache=false",
              "--set", "max_steps=400", "--set", "questions_per_step=2", "--set", "num_generations=4",
              "--set", "max_completion_length=16", "--set", "eval_size=4", "--set", "eval_steps=0",
              "--set", "save_steps=0", "--set", "log_samples_steps=0"])
    try:
        assert t.next(lambda m: True)["type"] == "started"
        t.next(lambda m: m["type"] == "metrics", timeout=600)  # GRPO is running
        q = "(3+1)*3"
        r = t.ok("rescore", question=q, completion=arith.worked_solution(q), group=["#### 1", "x", "#### 2"], index=1)
        assert r["source"]["checkpoint"] is None and r["source"]["phase"] == "grpo"
        assert r["reward"] == 1.0 and r["rewards"] == [0.0, 1.0, 0.0] and r["advantages"][1] > 0
        assert len(r["ratio"]) == len(r["tokens"]) == len(arith.worked_solution(q))
        t.ok("stop")
        assert t.p.wait(timeout=300) == 0, t.stderr()
    finally:
        if t.p.poll() is None:
            t.p.kill()
            t.p.wait()


def test_a_subword_tokenizer_checkpoint_with_a_chat_template(tmp_path):
    """A tiny random Qwen2 (byte-level BPE, ChatML): the edit is scored after the chat-formatted prompt,
    token by token in subwords, and rewarded by the verifier."""
    run = tmp_path / "hf"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    subprocess.run([sys.executable, str(ROOT / "test" / "fixtures" / "tiny_hf_run.py"), str(run)], check=True, env=env,
                   capture_output=True, timeout=300)
    ctx, source, _ = context.from_checkpoint(run)
    q = "12+30"
    right, wrong = "12 + 30 = 42. #### 42", "So x = 3/4 — naïve. #### 41"
    r = rescore(ctx, source, question=q, completion=right, group=[wrong, wrong, right], index=2)
    assert r["prompt"] == "<|im_start|>user\n12+30<|im_end|>\n<|im_start|>assistant\n"
    assert r["reward"] == 1.0 and r["rewards"] == [0.0, 0.0, 1.0]
    assert r["advantages"] == expected_advantages(ctx, [0.0, 0.0, 1.0])
    s = inspector.score(ctx, right, r["prompt"], source.step)
    assert {k: r[k] for k in PER_TOKEN} == {k: s[k] for k in PER_TOKEN}
    assert len(r["tokens"]) < len(right)  # subwords
    assert any(k > 0 for k in r["kl"]) and any(abs(x - 1) > 1e-3 for x in r["ratio"])
    # non-ASCII: offsets count code points and cover the text
    w = rescore(ctx, source, question=q, completion=wrong, group=[right, wrong], index=1)
    assert w["reward"] == 0.0 and w["advantages"] == expected_advantages(ctx, [1.0, 0.0])
    assert w["offsets"][0][0] == 0 and w["offsets"][-1][1] == len(wrong)
    # the same text scored after the training prompt, not after nothing: its first token is scored too
    assert w["tokens"] == inspector.score(ctx, wrong, r["prompt"])["tokens"]
