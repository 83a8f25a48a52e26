"""Behaviour pinned exactly before the training loop is restructured (issue 23, item 0): what a refactor must not
change, asserted to the bit where CPU arithmetic allows it.

- kill-and-resume: a run killed during SFT and again during GRPO, resumed each time, ends with the metrics rows
  and the weights of a run that was never killed (test_training.py's kill test checks only steps and rows);
- the default sampler's completion layout: a model forced to emit EOS at known positions gives an exact
  completion, mask (the EOS counted, nothing after it), lengths and truncated flags, with and without the KV
  cache and with every compaction of the decode batch;
- process supervision with a subword tokenizer: each step's end character lands on a hand-checked token and
  every token's advantage is the hand-computed suffix sum of the normalised step rewards.
"""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo import engines, groups, models, rollout
from grpo.rewards import Scored
from grpo.rundir import read_jsonl
from grpo.tasks import arith

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------- kill and resume
# Every field of a metrics row except the clock's.
CLOCK = {"time", "elapsed", "time/generate", "time/train", "tokens_per_second"}
# kill_switch:make is the arith task with a deterministic SIGKILL (tests/fixtures/kill_switch.py); a task given as
# code is never taken from the SFT cache, so both runs train their SFT. A length reward gives GRPO signal (and
# gradients) from the first step, so a resume from the wrong weights or streams shows in every column.
RUN = ["task=kill_switch:make", "reward_function=length_reward:near_twelve", "sft_steps=20", "sft_save_steps=10",
       "sft_batch_size=16", "max_steps=6", "save_steps=3", "questions_per_step=4", "num_generations=4",
       "max_completion_length=24", "learning_rate=1e-3", "eval_size=8", "eval_samples=0", "eval_steps=0",
       "log_samples_steps=1", "onnx_export=false", "sft_cache=false", "save_total_limit=0"]


def _train(run: Path, *sets: str, resume: bool = False, kill_when: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(FIXTURES)]),
           "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
    env.pop("GRPO_TEST_KILL_WHEN", None)
    if kill_when is not None:
        env["GRPO_TEST_KILL_WHEN"] = str(kill_when)
    args = [sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet", *(["--resume"] if resume else [])]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(ckpt / "model.safetensors")


def _same_weights(a: Path, b: Path) -> list[str]:
    """Names of the tensors that differ (or exist in one only) between two checkpoints' weights."""
    wa, wb = _weights(a), _weights(b)
    return sorted(set(wa) ^ set(wb)) + [k for k in sorted(set(wa) & set(wb)) if not torch.equal(wa[k], wb[k])]


def _rows(run: Path, name: str = "metrics.jsonl") -> list[dict]:
    rows, bad = read_jsonl(run / name)
    assert bad == 0
    return [{k: v for k, v in r.items() if k not in CLOCK} for r in rows]


def _ckpts(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_kill_during_sft_and_grpo_then_resume_is_the_straight_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    p = _train(straight, *RUN)
    assert p.returncode == 0, p.stderr[-3000:]

    # killed as SFT step 11 starts (sft_000010 committed), resumed from there ...
    p = _train(killed, *RUN, kill_when=killed / "checkpoints" / "sft_000010")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert _ckpts(killed) == ["sft_000010"]
    # ... killed again as GRPO step 4 starts (step_000003 committed), resumed from there
    p = _train(killed, resume=True, kill_when=killed / "checkpoints" / "step_000003")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert _ckpts(killed) == ["sft_000010", "sft_000020", "step_000000", "step_000003"]
    p = _train(killed, resume=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((killed / "status.json").read_text())["state"] == "finished"
    assert _ckpts(killed) == _ckpts(straight) == ["sft_000010", "sft_000020", "step_000000", "step_000003",
                                                  "step_000006"]

    a, b = straight / "checkpoints", killed / "checkpoints"
    # SFT resumed from sft_000010 (weights, AdamW, cosine schedule, data stream) ends where the straight SFT ends
    assert _same_weights(a / "sft_000020", b / "sft_000020") == [], "SFT after a resume differs"
    assert _same_weights(a / "step_000000", b / "step_000000") == [], "the GRPO start differs"
    # GRPO resumed from step_000003: every row, before and after the kill, is the straight run's
    rows = _rows(straight)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all(r["grad_norm"] > 0 for r in rows)  # the policy moves at every step: the weights can tell
    assert _rows(killed) == rows
    assert _rows(killed, "samples.jsonl") == _rows(straight, "samples.jsonl")  # the same completions, token for token
    assert _same_weights(a / "step_000006", b / "step_000006") == [], "the final weights differ"
    assert _same_weights(a / "step_000000", a / "step_000006") != []  # not vacuous: GRPO changed the weights


# ------------------------------------------------------------------------------------- the sampler's mask
EOS_AFTER = 5  # the token after position 5 is EOS; after any other position p it is FIRST + p
FIRST = 10


class ForcedEOS(torch.nn.Module):
    """The built-in tiny Llama, run for real (so the KV cache, its compaction and the attention mask are the real
    ones), with its logits replaced by a one-hot choice that depends only on the position being read: after
    position EOS_AFTER comes EOS, after any other position p the token FIRST + p. A prompt of L tokens (positions
    0..L-1) therefore gets EOS as completion token EOS_AFTER - (L - 1), and never when L - 1 > EOS_AFTER."""

    def __init__(self, eos_id: int):
        super().__init__()
        tok = models.char_tokenizer()
        self.inner = models.tiny_model(tok, 0).eval()
        self.config = self.inner.config
        self.eos_id = eos_id

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
                logits_to_keep=0, **kw):
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, use_cache=use_cache, logits_to_keep=logits_to_keep, **kw)
        pos = position_ids[:, -1]
        want = torch.where(pos == EOS_AFTER, torch.full_like(pos, self.eos_id), FIRST + pos)
        logits = torch.full_like(out.logits, -1e4)
        logits[torch.arange(len(pos)), -1, want] = 0.0
        out.logits = logits
        return out


def _expected(lengths: list[int], width: int, eos: int, pad: int):
    ids, mask, trunc = [], [], []
    for L in lengths:
        e = EOS_AFTER - (L - 1)
        if e < 0:  # the prompt ends past EOS_AFTER: no EOS, ever
            ids.append([FIRST + L - 1 + t for t in range(width)])
            mask.append([1] * width)
            trunc.append(True)
        else:
            ids.append([FIRST + L - 1 + t for t in range(e)] + [eos] + [pad] * (width - e - 1))
            mask.append([1] * (e + 1) + [0] * (width - e - 1))
            trunc.append(False)
    return ids, mask, trunc


# prompt lengths 2..6 put EOS at completion tokens 4, 3, 2, 1, 0; a 7-token prompt never meets it (truncated).
# Rows are shuffled so that the rows that finish first are not the first rows.
CASES = {
    "one_truncated": ([4, 7, 2, 6, 3, 5], 6),   # max_new_tokens 6: the truncated row decodes to the end
    "all_finish": ([5, 2, 6, 4, 3], 8),         # the longest completion is 5 tokens: decoding stops there
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("compact_at", [0.25, 0.0, 1.0])  # the default; compact at every step; never compact
def test_sampler_completion_layout_with_forced_eos(case, use_cache, compact_at):
    tok = models.char_tokenizer()
    eos, pad = tok.eos_token_id, tok.pad_token_id
    model = ForcedEOS(eos)
    lengths, max_new = CASES[case]
    prompts_ = [[20 + j for j in range(L)] for L in lengths]
    width = max_new if any(L - 1 > EOS_AFTER for L in lengths) else max(EOS_AFTER - L + 2 for L in lengths)
    ids, mask, trunc = _expected(lengths, width, eos, pad)
    for temperature, top_p in ((1.0, 1.0), (0.0, 1.0), (0.7, 0.5)):
        b = rollout.sample(model, prompts_, max_new_tokens=max_new, eos_id=eos, pad_id=pad, temperature=temperature,
                           top_p=top_p, generator=torch.Generator().manual_seed(0), use_cache=use_cache,
                           compact_at=compact_at)
        assert b.completion_ids.tolist() == ids
        assert b.completion_mask.tolist() == mask  # the EOS counted, nothing after it
        assert b.lengths.tolist() == [sum(m) for m in mask]
        assert b.truncated.tolist() == trunc
        assert b.prompt_ids.tolist() == [[pad] * (max(lengths) - len(p)) + p for p in prompts_]  # left-padded
        assert b.prompt_mask.tolist() == [[0] * (max(lengths) - len(p)) + [1] * len(p) for p in prompts_]
        assert b.attention_mask.shape == (len(lengths), max(lengths) + width)


@pytest.mark.parametrize("name", ["kv_cache", "static"])
def test_engines_give_the_sampler_layout_with_forced_eos(name):
    tok = models.char_tokenizer()
    eos, pad = tok.eos_token_id, tok.pad_token_id
    for lengths, max_new in CASES.values():
        model = ForcedEOS(eos)
        prompts_ = [[20 + j for j in range(L)] for L in lengths]
        width = max_new if any(L - 1 > EOS_AFTER for L in lengths) else max(EOS_AFTER - L + 2 for L in lengths)
        ids, mask, trunc = _expected(lengths, width, eos, pad)
        b = engines.make(name, CPU).generate(model, prompts_, max_new_tokens=max_new, eos_id=eos, pad_id=pad,
                                             generator=torch.Generator().manual_seed(0))
        assert (b.completion_ids.tolist(), b.completion_mask.tolist(), b.truncated.tolist()) == (ids, mask, trunc)


# ------------------------------------------------------------------------------------- process supervision
# One group of two completions of "12+30-7" under the tiny Qwen2's byte-level BPE tokenizer (as training loads it:
# Qwen2's pre-tokenizer splits digits, BPE merges " +", " =", " -", "##"), worked by hand. A is the worked solution
# with spaces; B has a blank line (not a step), a wrong second step and a trailing space.
QUESTION = "12+30-7"
A = "12 + 30 = 42\n42 - 7 = 35\n#### 35"
B = "12 + 30 = 42\n\n42 - 7 = 36 \n#### 36"
A_TOKENS = ["1", "2", " +", " ", "3", "0", " =", " ", "4", "2", "\n",              # tokens 0-10, characters 0-12
            "4", "2", " -", " ", "7", " =", " ", "3", "5", "\n",                  # tokens 11-20, characters 13-24
            "##", "##", " ", "3", "5"]                                           # tokens 21-25, characters 25-31
B_TOKENS = ["1", "2", " +", " ", "3", "0", " =", " ", "4", "2", "\n",              # tokens 0-10, characters 0-12
            "\n", "4", "2", " -", " ", "7", " =", " ", "3", "6", " ", "\n",        # tokens 11-22, characters 13-26
            "##", "##", " ", "3", "6"]                                           # tokens 23-27, characters 27-33


@pytest.fixture(scope="module")
def qwen2_tok(tiny_dirs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dirs["qwen2"], padding_side="left")  # as models.load reads it


def _group(tok, texts):
    """The completions as sampled: their tokens, then EOS, right-padded (rollout.completion_batch's layout)."""
    seqs = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    width = max(len(s) for s in seqs)
    completion = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    n = len(texts)
    return seqs, rollout.completion_batch(torch.ones(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.long),
                                          completion, tok.eos_token_id)


@pytest.mark.parametrize("scale_rewards", ["group", "none"])
def test_process_step_ends_and_advantages_with_a_subword_tokenizer(qwen2_tok, scale_rewards):
    tok = qwen2_tok
    texts = [A, B, A, A]  # two groups (G = 2): (A, B), and (A, A) whose rewards are all equal
    seqs, batch = _group(tok, texts)
    assert [[tok.decode([i]) for i in s[:-1]] for s in seqs[:2]] == [A_TOKENS, B_TOKENS]  # multi-character tokens
    assert batch.lengths.tolist() == [27, 29, 27, 27]  # tokens + EOS

    steps = [arith.process_rewards(QUESTION, t) for t in texts]
    # each step ends at its newline, the last one at the completion's last character; B's blank line is no step
    assert steps[0] == ([1.0, 1.0, 1.0], [12, 24, 31])
    assert steps[1] == ([1.0, 0.0, 0.0], [12, 26, 33])
    scored = Scored(rewards=[1.0, 0.0, 1.0, 1.0], correct=[True, False, True, True],
                    step_rewards=[r for r, _ in steps], step_ends=[e for _, e in steps])
    adv, seq_adv, ends = groups.compute_advantages(tok, batch, scored, 2, "process", scale_rewards)
    # character 12 ("\n") is token 10: " +" and " =" hold two characters each; A's second "\n" (24) is token 20,
    # its last "5" (31) token 25. B: the first "\n" token 10; the blank line's "\n" (13, token 11) ends no step;
    # the second step's "\n" (26) is token 22, the last "6" (33) token 27.
    assert ends == [[10, 20, 25], [10, 22, 27], [10, 20, 25], [10, 20, 25]]

    # the group's six step rewards 1 1 1 | 1 0 0: mean 2/3, Bessel std sqrt(4/15); r̃ = (r - 2/3) / (std + 1e-4)
    # (scale_rewards none: r - 2/3)
    s = math.sqrt(4 / 15) + 1e-4 if scale_rewards == "group" else 1.0
    hi, lo = (1 / 3) / s, (-2 / 3) / s
    # a token's advantage: the sum of r̃ over the steps ending at or after it; EOS (after every step end) gets 0
    want_a = [3 * hi] * 11 + [2 * hi] * 10 + [hi] * 5 + [0.0]
    want_b = [hi + 2 * lo] * 11 + [2 * lo] * 12 + [lo] * 5 + [0.0]
    assert adv.shape == (4, 29)
    assert adv[0].tolist() == pytest.approx(want_a + [0.0, 0.0], abs=1e-6)  # padding: 0
    assert adv[1].tolist() == pytest.approx(want_b, abs=1e-6)
    assert adv[2:].abs().max() == 0  # a group whose step rewards are all equal carries no signal
    assert seq_adv.tolist() == pytest.approx([3 * hi, hi + 2 * lo, 0.0, 0.0], abs=1e-6)


def test_process_step_ends_after_a_character_split_over_byte_tokens(qwen2_tok):
    tok = qwen2_tok
    text = "4×2=8\n3+8=11\n#### 11"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == ["4", "\ufffd", "\ufffd", "2", "=", "8", "\n", "3", "+", "8", "=", "1",
                                              "1", "\n", "##", "##", " ", "1", "1"]
    assert tok.decode(ids) == text
    _, ends = arith.process_rewards("3+4*2", text)
    assert ends == [5, 12, 19]  # characters: the two newlines and the last "1"
    assert groups.char_to_token_ends(tok, ids + [tok.eos_token_id], ends) == [6, 13, 18]  # gives [5, 12, 17]
