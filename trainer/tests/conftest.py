"""Shared fixtures: a small run directory written the way training writes it, without training for minutes."""

import json
import os
import random
import shutil
import tempfile

import pytest
import torch

from grpo import models, prompts, sft
from grpo.config import Config
from grpo.tasks import arith

_OWN_CACHE = None


def pytest_configure(config):
    """Tests never write the user's SFT cache: $GRPO_CACHE_DIR is scripts/test.sh's (shared with the e2e tests
    within one CI run) or, when unset, a folder of this session's own. Tests that assert SFT itself set
    sft_cache=false."""
    global _OWN_CACHE
    if not os.environ.get("GRPO_CACHE_DIR"):
        _OWN_CACHE = tempfile.mkdtemp(prefix="grpo-test-cache-")
        os.environ["GRPO_CACHE_DIR"] = _OWN_CACHE


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def _save(model, tok, ckpt, step):
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": step, "phase": "grpo", "sft_step": 0,
                                                         "ref_reset_at": None}))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """runs/…/checkpoints/step_000000 (the untrained built-in model: the reference) and step_000005 (the
    same model after 5 SFT steps: a policy that differs from it), with the run's config.json."""
    run = tmp_path_factory.mktemp("run")
    ckpts = run / "checkpoints"
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    _save(model, tok, ckpts / "step_000000", 0)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    rng = random.Random(0)
    for _ in range(5):
        qs = [arith.random_expression(rng) for _ in range(16)]
        batch = sft.teacher_batch(tok, [prompts.plain(q) for q in qs], [arith.worked_solution(q) for q in qs],
                                  torch.device("cpu"))
        loss = sft.sft_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _save(model, tok, ckpts / "step_000005", 5)
    # answer_fallback on: the tests make a barely trained model's completion right by its last number
    cfg = Config(num_generations=4, max_completion_length=24, temperature=1.0, answer_fallback="on").to_dict()
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "status.json").write_text(json.dumps({"state": "stopped", "step": 5}))
    return run


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Random-weight Qwen2 and Llama checkpoints with a byte-level BPE tokenizer and a chat template,
    written at test time (nothing downloaded, nothing committed)."""
    from grpo import tiny_hf

    root = tmp_path_factory.mktemp("tiny_hf")
    return {arch: str(tiny_hf.write_checkpoint(root / arch, arch)) for arch in ("qwen2", "llama")}
