"""Trainer throughput on this machine: SFT tokens/s, GRPO step tokens/s, and sampling tokens/s with and
without the KV cache, for the embedded default's tiny model. Medians over repeats, all in one run.

    PYTHONPATH=trainer .venv/bin/python bench/trainer_throughput.py [--out bench/results/trainer-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from grpo import algorithm, logprobs, models, prompts, rollout, sft
from grpo.tasks import arith
from hostinfo import cpu_model


def machine() -> str:
    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return f"{platform.system()} {platform.machine()}, {cpu}, {torch.get_num_threads()} threads" + (f", {gpu}" if gpu else "")


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/trainer-cpu.json")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model, tok = models.load(models.BUILTIN, 0, device)
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    # SFT: 64 worked solutions per step
    rows = [arith.random_expression(rng) for _ in range(64)]
    sft_batch = sft.teacher_batch(tok, [prompts.plain(q) for q in rows], [arith.worked_solution(q) for q in rows], device)
    sft_tokens = float(sft_batch.attention_mask.sum())

    def sft_step():
        loss = sft.sft_loss(model, sft_batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    sft_times = timed(sft_step, args.repeats)

    # sampling 16 questions × G=16, 64 new tokens max, with and without the KV cache
    prompt_ids = [sft.encode(tok, prompts.plain(arith.random_expression(rng))) for _ in range(16)]
    prompt_ids = [p for p in prompt_ids for _ in range(16)]
    gen = torch.Generator(device=device)
    results = {}
    for use_cache in (True, False):
        samples = []

        def sample():
            gen.manual_seed(0)
            samples.append(rollout.sample(model, prompt_ids, max_new_tokens=64, eos_id=tok.eos_token_id,
                                          pad_id=tok.pad_token_id, generator=gen, use_cache=use_cache))

        times = timed(sample, args.repeats)
        tokens = float(samples[-1].completion_mask.sum())
        results["kv" if use_cache else "nokv"] = (times, tokens)

    # one GRPO update on that batch (policy + reference forward, loss, backward, step)
    batch = results and samples[-1]
    ref = models.load(models.BUILTIN, 0, device)[0].eval()
    adv = torch.randn(batch.completion_ids.shape[0], device=device)
    mask = batch.completion_mask.float()

    def grpo_update():
        with torch.no_grad():
            ref_logp, _ = logprobs.token_logprobs(ref, batch)
        logp, _ = logprobs.token_logprobs(model, batch)
        loss, _ = algorithm.grpo_loss(logp, logp.detach(), ref_logp, adv, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    grpo_times = timed(grpo_update, args.repeats)
    kv_t, kv_tokens = results["kv"]
    nokv_t, nokv_tokens = results["nokv"]
    grpo_tokens = float(mask.sum())
    step_time = statistics.median(kv_t) + statistics.median(grpo_times)
    out = {
        "machine": machine(), "device": str(device), "torch": torch.__version__,
        "model": f"builtin:tiny ({sum(p.numel() for p in model.parameters()):,} parameters)",
        "repeats": args.repeats,
        "sft_tokens_per_second": sft_tokens / statistics.median(sft_times),
        "sampling_tokens_per_second_kv_cache": kv_tokens / statistics.median(kv_t),
        "sampling_tokens_per_second_no_cache": nokv_tokens / statistics.median(nokv_t),
        "kv_cache_speedup": statistics.median(nokv_t) / statistics.median(kv_t) * kv_tokens / nokv_tokens,
        "grpo_update_tokens_per_second": grpo_tokens / statistics.median(grpo_times),
        "grpo_step_tokens_per_second": grpo_tokens / step_time,
        "batch": {"sft_sequences": 64, "grpo_completions": len(prompt_ids), "max_new_tokens": 64},
        "median_seconds": {"sft_step": statistics.median(sft_times), "sample_kv": statistics.median(kv_t),
                           "sample_no_cache": statistics.median(nokv_t), "grpo_update": statistics.median(grpo_times)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
