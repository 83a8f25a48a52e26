"""Hugging Face checkpoints (tiny random Qwen2 and Llama): loading, chat prompts, LoRA, chunked log-probs,
rollout engines, and the whole training loop, full and LoRA."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from child import Proc

from grpo import config, engines, logprobs, models, prompts, rollout

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def _batch(model, tok, n_new=10, seed=0):
    prompts_ = [tok("What is 3+4?")["input_ids"], tok("x")["input_ids"], tok("12 plus 30")["input_ids"]]
    return rollout.sample(model, prompts_, max_new_tokens=n_new, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                          generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_local_checkpoint_loads_with_its_chat_template(tiny_dirs, arch):
    model, tok = models.load(tiny_dirs[arch], 0, CPU)
    assert model.config.model_type == arch and tok.padding_side == "left"
    text = "What is 3+4?\n#### 7 \\boxed{x}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    fmt = prompts.formatter(tok, "auto", "Be brief.")
    assert fmt("Hi?") == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    assert prompts.formatter(tok, "off")("Hi?") == "Hi?\n"


def test_chat_template_on_without_one_is_an_error():
    _, tok = models.load(models.BUILTIN, 0, CPU)
    with pytest.raises(ValueError, match="chat_template"):
        prompts.formatter(tok, "on")


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_chunked_logprobs_equal_the_full_log_softmax(tiny_dirs, arch):
    model, tok = models.load(tiny_dirs[arch], 0, CPU)
    batch = _batch(model, tok)
    full, full_ent = logprobs.token_logprobs(model, batch, 0.7, with_entropy=True)
    for chunk in (1, 7, 10_000):
        part, part_ent = logprobs.token_logprobs(model, batch, 0.7, with_entropy=True, chunk_tokens=chunk)
        assert torch.allclose(full, part, atol=1e-5) and torch.allclose(full_ent, part_ent, atol=1e-5)
    grads = []
    for chunk in (0, 4):
        model.zero_grad()
        logp, _ = logprobs.token_logprobs(model, batch, 1.0, chunk_tokens=chunk)
        (logp * batch.completion_mask).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_chunked_logprobs_for_an_architecture_without_the_hidden_state_path():
    """GPT-2 is not in the hidden-state list: its own forward gives logits, only the softmax is chunked."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2, n_positions=64)).eval()
    prompts_ = [[1, 2, 3], [4, 5]]
    batch = rollout.sample(model, prompts_, max_new_tokens=6, eos_id=49, pad_id=0, generator=torch.Generator().manual_seed(0))
    full, _ = logprobs.token_logprobs(model, batch)
    part, _ = logprobs.token_logprobs(model, batch, chunk_tokens=3)
    assert torch.allclose(full, part, atol=1e-5)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_engines_agree_with_the_kv_cache_sampler(tiny_dirs, arch):
    model, tok = models.load(tiny_dirs[arch], 0, CPU)
    model.eval()
    prompts_ = [tok("What is 3+4?")["input_ids"], tok("x")["input_ids"], tok("12 plus 30")["input_ids"]] * 2
    kw = dict(max_new_tokens=12, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    out = {}
    for name in ("kv_cache", "static", "hf_generate"):
        eng = engines.make(name, CPU)
        for temp in (0.0, 1.0):
            out[name, temp] = eng.generate(model, prompts_, temperature=temp, generator=torch.Generator().manual_seed(1), **kw)
    for temp in (0.0, 1.0):  # the static cache samples exactly the kv_cache engine's tokens from the same seed
        assert torch.equal(out["kv_cache", temp].completion_ids, out["static", temp].completion_ids)
        assert torch.equal(out["kv_cache", temp].completion_mask, out["static", temp].completion_mask)
    assert torch.equal(out["kv_cache", 0.0].completion_ids, out["hf_generate", 0.0].completion_ids)  # greedy
    assert engines.resolve("auto", CPU) == "kv_cache"


def test_engine_masks_after_eos():
    ids = torch.tensor([[5, 2, 7, 7], [5, 6, 7, 8]])
    b = rollout.completion_batch(torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long), ids, eos_id=2)
    assert b.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and b.truncated.tolist() == [False, True]


def test_lora_reference_is_the_base_with_adapters_disabled(tiny_dirs):
    opts = models.Options(lora_r=4, lora_alpha=8)
    policy, tok = models.load(tiny_dirs["llama"], 0, CPU, opts)
    base, _ = models.load(tiny_dirs["llama"], 0, CPU)
    assert models.is_lora(policy)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    batch = _batch(base, tok)
    scorer = logprobs.Scorer(policy, chunk_tokens=5)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=0.05)
    for _ in range(2):  # move the adapters
        logp, _ = logprobs.score(scorer, batch)
        opt.zero_grad()
        (-(logp * batch.completion_mask).sum()).backward()
        opt.step()
    with torch.no_grad():
        want, _ = logprobs.token_logprobs(base, batch)
        ref, _ = logprobs.score(scorer, batch, disable_adapter=True)
        now, _ = logprobs.score(scorer, batch)
    assert torch.allclose(ref, want, atol=1e-5)
    assert (now - want).abs().max() > 1e-3  # the policy itself has moved


def test_gradient_checkpointing_gives_the_same_gradients(tiny_dirs):
    grads = []
    for ckpt in (False, True):
        model, tok = models.load(tiny_dirs["qwen2"], 0, CPU, models.Options(gradient_checkpointing=ckpt))
        batch = _batch(model.eval(), tok)  # sampling runs in eval mode, where the KV cache is allowed
        model.train()
        logp, _ = logprobs.token_logprobs(model, batch)
        (logp * batch.completion_mask).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_dtype_and_attention_settings():
    assert models.compute_dtype("auto", CPU) == torch.float32
    assert models.compute_dtype("bfloat16", CPU) == torch.bfloat16
    assert models.attention_kernel("auto", CPU, torch.float32) == "sdpa"
    model, tok = models.load(models.BUILTIN, 0, CPU)
    batch = _batch(model, tok, n_new=4)
    seen = []  # what a layer inside the model computes in: autocast must reach it, not only the result's dtype
    hook = model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    full, _ = logprobs.score(logprobs.Scorer(model, 0, torch.float32), batch)
    half, _ = logprobs.score(logprobs.Scorer(model, 0, torch.bfloat16), batch)  # autocast on CPU
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]
    # the log-probs come back in float32, close to the float32 ones but not equal to them (bf16 was applied)
    assert half.dtype == torch.float32 and 0 < (full - half).abs().max() < 0.1


@pytest.mark.parametrize("overrides,message", [
    (["lora_r=8"], "'lora_r' needs a Hugging Face model directory"),
    (["lora_r=8", "model=/some/dir", "ref_reset_steps=10"], "'ref_reset_steps' cannot be used with 'lora_r'"),
    (["lora_target_modules= , "], "'lora_target_modules' must name"),
    (["question_column="], "'question_column' must not be empty"),
    (["dtype=fp8"], "'dtype' must be one of"),
    (["rollout_engine=sglang"], "'rollout_engine' must be one of"),
    (["logprob_chunk_tokens=-1"], "'logprob_chunk_tokens' must be ≥ 0"),
    (["gradient_checkpointing=yes"], "'gradient_checkpointing' must be a bool"),
])
def test_new_settings_are_validated(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.build_config({}, overrides)


def test_bad_lora_target_names_the_setting(tiny_dirs):
    with pytest.raises(ValueError, match="lora_target_modules"):
        models.load(tiny_dirs["llama"], 0, CPU, models.Options(lora_r=2, lora_target_modules="no_such_proj"))


# ---------------------------------------------------------------------------------------------- whole loop
def _train(run_dir, *sets, resume=False):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(Path(__file__).parent / "fixtures")])}
    args = [sys.executable, "-m", "grpo", "train", "--run-dir", str(run_dir), "--quiet"]
    args += ["--resume"] if resume else []
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def gsm_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "gsm.jsonl"
    lines = [json.dumps({"question": f"What is {a} plus {b}?", "answer": f"{a}+{b}={a + b}\n#### {a + b}"})
             for a in range(1, 6) for b in range(1, 5)]
    f.write_text("\n".join(lines + ["oops"]) + "\n")
    return f


# onnx_export=false: small subword models are exported beside each checkpoint too (~20 s each on 2 cores);
# test_onnx_export.py covers that export
SMALL = ["max_steps=2", "questions_per_step=2", "num_generations=4", "max_completion_length=12", "eval_size=2",
         "logprob_chunk_tokens=16", "save_steps=1", "onnx_export=false"]


def test_full_training_of_a_qwen2_checkpoint(tiny_dirs, gsm_file, tmp_path):
    run = tmp_path / "run"
    # random weights never answer right, so a length reward gives the groups signal (and gradients)
    p = _train(run, f"model={tiny_dirs['qwen2']}", f"task={gsm_file}", "num_iterations=2", "rollout_engine=static",
               "reward_function=length_reward:near_twelve", *SMALL)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["grad_norm"] > 0 for r in rows)
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].startswith("<|im_start|>user\nWhat is") and sample["answer"].isdigit()
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert any(e.get("code") == "bad_rows" and e["count"] == 1 for e in events)
    ckpt = run / "checkpoints" / "step_000002"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "chat_template.jinja").is_file()


def test_lora_training_saves_adapters_and_resumes(tiny_dirs, gsm_file, tmp_path):
    run = tmp_path / "run"
    p = _train(run, f"model={tiny_dirs['llama']}", f"task={gsm_file}", "lora_r=4", "gradient_checkpointing=true",
               "reward_function=length_reward:near_twelve", "learning_rate=0.01", *SMALL)
    assert p.returncode == 0, p.stderr
    ckpt = run / "checkpoints" / "step_000002"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    assert json.loads((ckpt / "adapter_config.json").read_text())["base_model_name_or_path"] == tiny_dirs["llama"]
    first = models.load(str(run / "checkpoints" / "step_000000"), 0, CPU)[0]
    last = models.load(str(ckpt), 0, CPU)[0]
    lora_b = lambda m: torch.cat([p.flatten() for n, p in m.named_parameters() if "lora_B" in n])  # noqa: E731
    assert lora_b(first).abs().max() == 0 and lora_b(last).abs().max() > 0  # trained adapters were saved
    p = _train(run, "max_steps=3", resume=True)
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    ev = subprocess.run([sys.executable, "-m", "grpo", "eval", "--checkpoint", str(run / "checkpoints" / "step_000003"),
                         "--data", str(gsm_file), "--max-new-tokens", "4"], capture_output=True, text=True, env=env)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n"] == 20
    # the reference is the base with the adapters disabled: after 3 steps the policy has moved away from it
    serve = Proc(["serve", "--checkpoint", str(run)])
    try:
        assert serve.next(lambda m: True)["type"] == "started"
        c = serve.ok("compare", question="What is 3 plus 4?", max_completion_length=8)
    finally:
        serve.p.kill()
        serve.p.wait()
    assert c["source"]["step"] == 3 and "adapters disabled" in c["source"]["reference"]
    assert c["prompt"].startswith("<|im_start|>user\nWhat is 3 plus 4?")
    assert c["sequence_kl"]["policy"] > 0 and max(abs(d) for d in c["policy"]["logp_diff"]) > 1e-4


def test_sixteen_bit_rollout_copy_follows_the_policy():
    """With float32 training weights and a 16-bit compute dtype, engines decode on a 16-bit copy that
    `sync` refreshes after an update."""
    model, tok = models.load(models.BUILTIN, 0, CPU)
    eng = engines.make("kv_cache", CPU, torch.bfloat16)
    shadow = eng.rollout_model(model)
    assert shadow is not model and next(shadow.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    eng.sync(model)
    assert eng.rollout_model(model) is shadow
    assert torch.allclose(next(shadow.parameters()).float(), next(model.parameters()), atol=0.05)
    out = eng.generate(model, [tok("1+2\n")["input_ids"]], max_new_tokens=3, eos_id=tok.eos_token_id,
                       pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    assert out.completion_ids.shape == (1, 3)
    assert engines.make("kv_cache", CPU).rollout_model(model) is model  # float32: no copy


def test_static_engine_reuses_its_cache_and_still_matches(tiny_dirs):
    model, tok = models.load(tiny_dirs["qwen2"], 0, CPU)
    model.eval()
    prompts_ = [tok("What is 3+4?")["input_ids"], tok("x")["input_ids"]]
    kw = dict(max_new_tokens=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, temperature=0.0)
    static, kv = engines.make("static", CPU), engines.make("kv_cache", CPU)
    first = static.generate(model, prompts_, **kw)
    second = static.generate(model, prompts_[::-1], **kw)  # same shapes: the same cache object, reset
    assert len(static._caches) == 1
    assert torch.equal(second.completion_ids, kv.generate(model, prompts_[::-1], **kw).completion_ids)
    assert torch.equal(first.completion_ids, kv.generate(model, prompts_, **kw).completion_ids)
