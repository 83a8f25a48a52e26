"""`python -m grpo serve`: a real subprocess answering sample_group / score / compare about a checkpoint,
refusing bad input with a clear message, and carrying on."""

import time

import pytest
import torch
from child import Proc

from grpo import algorithm
from grpo.verify import number_matches

GROUP_KEYS = {"step", "question", "answer", "prompt", "completions", "rewards", "correct", "advantages",
              "truncated", "tokens", "step_rewards", "step_ends"}
TOKEN_KEYS = {"text", "logp", "old_logp", "ref_logp", "kl", "advantage", "entropy"}


@pytest.fixture(scope="module")
def server(tiny_run):
    proc = Proc(["serve", "--checkpoint", str(tiny_run / "checkpoints" / "step_000005")])
    started = proc.next(lambda m: True, timeout=300)
    assert started["type"] == "started", started
    proc.started = started
    yield proc
    if proc.p.poll() is None:
        proc.p.kill()
        proc.p.wait()


def test_started_line(server, tiny_run):
    s = server.started
    assert s["checkpoint"] == str((tiny_run / "checkpoints" / "step_000005").resolve())
    assert s["step"] == 5 and s["pid"] == server.p.pid and s["run_dir"] == str(tiny_run.resolve())


def test_score(server):
    text = "3+1=4\n4*3=12\n#### 12"
    r = server.ok("score", prompt="(3+1)*3\n", text=text)
    n = len(text)
    assert r["tokens"] == list(text) and r["offsets"] == [[i, i + 1] for i in range(n)]
    assert len(r["logp"]) == len(r["ref_logp"]) == len(r["kl"]) == len(r["entropy"]) == n
    assert all(lp <= 0 for lp in r["logp"]) and all(k >= 0 for k in r["kl"]) and all(e >= 0 for e in r["entropy"])
    kl = algorithm.kl_k3(torch.tensor(r["logp"]), torch.tensor(r["ref_logp"]))
    assert r["kl"] == pytest.approx(kl.tolist(), abs=2e-6)
    assert r["sequence_kl"] == pytest.approx(float(kl.mean()), abs=1e-5) and r["sequence_kl"] > 0
    assert r["sum_logp"] == pytest.approx(sum(r["logp"]), abs=1e-4) and r["step"] == 5
    # no prompt: the first character has nothing before it, so scoring starts at the second
    r = server.ok("score", text="12+4")
    assert r["tokens"] == ["2", "+", "4"] and r["offsets"][0] == [1, 2]


def test_sample_group_advantages_are_the_training_ones(server):
    q = "(3+1)*3+4*1"
    first = server.ok("sample_group", question=q, num_generations=6, seed=11, temperature=1.5)
    assert set(first) >= GROUP_KEYS | {"source"} and first["answer"] == "16" and first["prompt"] == q + "\n"
    assert first["source"]["checkpoint"].endswith("step_000005") and first["source"]["step"] == 5
    assert first["source"]["seed"] == 11
    # make one completion right: the same seed gives the same group, scored against its last number
    texts = first["completions"]
    pick = next(c for c in texts if any(ch.isdigit() for ch in c))
    answer = next(a for a in (str(i) for i in range(-99, 1000)) if number_matches(pick, a))
    g = server.ok("sample_group", question=q, answer=answer, num_generations=6, seed=11, temperature=1.5)
    assert g["completions"] == texts
    assert len(g["completions"]) == len(g["rewards"]) == len(g["advantages"]) == len(g["tokens"]) == 6
    assert 0 < sum(g["rewards"]) < 6
    want = algorithm.outcome_advantages(torch.tensor([g["rewards"]]))[0]
    assert g["advantages"] == pytest.approx(want.tolist(), abs=1e-5)
    for i, tok in enumerate(g["tokens"]):
        assert set(tok) == TOKEN_KEYS
        n = len(tok["text"])
        assert all(len(tok[k]) == n for k in TOKEN_KEYS)
        assert tok["advantage"] == pytest.approx([g["advantages"][i]] * n, abs=1e-5)
        assert all(k >= 0 for k in tok["kl"]) and tok["old_logp"] == tok["logp"]
        assert len(g["step_rewards"][i]) == len(g["step_ends"][i])
        assert all(0 <= e < n for e in g["step_ends"][i])


def test_sample_group_without_a_known_answer_scores_zero(server):
    g = server.ok("sample_group", question="hello there", num_generations=2, seed=1, max_completion_length=8)
    assert g["rewards"] == [0.0, 0.0] and g["advantages"] == [0.0, 0.0] and "note" in g
    assert "step_rewards" not in g


def test_compare(server):
    r = server.ok("compare", question="7-2*3", max_completion_length=20)
    assert r["prompt"] == "7-2*3\n" and r["source"]["temperature"] == 0
    pol, ref = r["policy"], r["reference"]
    assert set(pol) >= {"completion", "tokens", "logp", "ref_logp", "kl", "logp_diff"}
    assert set(ref) >= {"completion", "tokens", "logp", "policy_logp", "kl", "logp_diff"}
    for side, p_lp, r_lp in ((pol, pol["logp"], pol["ref_logp"]), (ref, ref["policy_logp"], ref["logp"])):
        assert len(side["tokens"]) == len(p_lp) == len(r_lp) == len(side["kl"]) == len(side["logp_diff"]) > 0
        assert side["logp_diff"] == pytest.approx([a - b for a, b in zip(p_lp, r_lp)], abs=2e-6)
    # greedy: each side's completion is its own model's most likely continuation, so it is likelier there
    assert sum(pol["logp"]) >= sum(ref["policy_logp"]) - 1e-4
    assert sum(ref["logp"]) >= sum(pol["ref_logp"]) - 1e-4
    assert r["sequence_kl"]["policy"] == pytest.approx(sum(pol["kl"]) / len(pol["kl"]), abs=1e-5)
    again = server.ok("compare", question="7-2*3", max_completion_length=20)  # greedy: the same, whatever the seed
    assert {k: v for k, v in again.items() if k != "source"} == {k: v for k, v in r.items() if k != "source"}


def test_bad_input_is_refused_and_named(server):
    assert "max_prompt_length" in server.error("sample_group", question="1+" * 100 + "1")
    assert "context of 1024" in server.error("score", text="1+2=3\n" * 200)
    assert "context of 1024" in server.error("compare", question="1+2", max_completion_length=1022)
    err = server.error("sample_group", question="3×4÷2")
    assert "×" in err and "÷" in err and "vocabulary" in err
    assert "€" in server.error("score", text="costs 5€")
    assert "1024" in server.error("compare", question="1+2", max_completion_length=5000)
    assert "'top_k'" in server.error("sample_group", question="1+2", top_k=3)
    assert "'num_generations'" in server.error("sample_group", question="1+2", num_generations="4")
    assert "'num_generations'" in server.error("sample_group", question="1+2", num_generations=1)
    assert "'question'" in server.error("compare")
    assert "'temperature'" in server.error("sample_group", question="1+2", temperature=0)
    assert "no training" in server.error("pause")
    assert "unknown request type 'fly'" in server.error("fly")
    server.send_raw("{not json")
    bad = server.next(lambda m: m["type"] == "response" and m["id"] is None)
    assert bad["ok"] is False and "not JSON" in bad["error"]
    assert server.ok("score", prompt="1+1\n", text="#### 2")["tokens"][0] == "#"  # still answering


def test_requests_are_answered_one_at_a_time_and_bounded(server):
    s = server.started  # the started line says how requests are answered, and how large one may be
    assert s["one_at_a_time"] is True and s["max_request_tokens"] == 8192
    t0 = time.time()  # G = 256 at 64 tokens kept the server from anything else for a minute: refused at once
    err = server.error("sample_group", question="1+2", num_generations=256, max_completion_length=64)
    assert time.time() - t0 < 10
    assert "'num_generations' × 'max_completion_length' = 256 × 64 = 16384" in err and "8192" in err, err
    assert "one at a time" in err
    assert "8192" in server.error("sample_group", question="1+2", num_generations=16, max_completion_length=1000)
    g = server.ok("sample_group", question="1+2", num_generations=2, max_completion_length=8, seed=1)
    assert len(g["completions"]) == 2  # within the bound: answered as before


def test_stop_ends_the_server(tiny_run):
    proc = Proc(["serve", "--checkpoint", str(tiny_run)])  # a run directory: its latest checkpoint
    started = proc.next(lambda m: True)
    assert started["type"] == "started" and started["checkpoint"].endswith("step_000005")
    assert proc.request("stop")["ok"]
    assert proc.p.wait(timeout=60) == 0


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = Proc(["serve", "--checkpoint", str(tmp_path / "nope")])
    assert proc.p.wait(timeout=120) == 1
    assert proc.lines.get(timeout=10) is None  # nothing on the protocol stream
    time.sleep(0.2)
    assert "no such directory" in proc.stderr()
