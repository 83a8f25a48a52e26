"""Peak memory of the inspector's `sample_group` on a large-vocabulary model, on CPU (issue 12: < 1.5 GB).

The model: a random Qwen2 with a 151,936-token vocabulary (Qwen2.5's; byte-level BPE padded to that size,
chat template) and a tiny body, written by `grpo.tiny_hf`. The request: G = 16 completions of 512 tokens
(a random model almost never samples EOS, so all 512 are generated), answered by `inspector.handle` on
`context.from_checkpoint` — what `serve` runs. Each measurement is a fresh process; its peak is the
resident-set high-water mark (`resource.getrusage(RUSAGE_SELF).ru_maxrss`), the model loaded included.

Beside it, the unchunked path the inspector used before (`logprobs.token_logprobs` with no chunking on the
policy with entropy and on the reference: [G, 512, 151,936] float32 logits, ~5 GB each) on the same sampled
batch. Measured at G = 1 and 2 only — G = 16 would need ~15 GB on a shared machine — and extrapolated
linearly to G = 16 (its memory is linear in G: the logits).

    PYTHONPATH=trainer .venv/bin/python bench/inspect_memory.py [--out bench/results/inspect-memory-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VOCAB = 151_936
G, TOKENS = 16, 512
BODY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=1024)
QUESTION = "What is 3+4?"
GOAL_MB = 1536


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure_inspector(checkpoint: str) -> dict:
    import torch

    from grpo import context, inspector, threads

    threads.configure()
    ctx, source, _ = context.from_checkpoint(checkpoint, torch.device("cpu"))
    loaded = _peak_mb()
    t0 = time.perf_counter()
    rec = inspector.handle(ctx, source, {"type": "sample_group", "question": QUESTION, "num_generations": G,
                                         "max_completion_length": TOKENS, "seed": 0})
    return {"peak_rss_mb": _peak_mb(), "after_load_rss_mb": loaded, "seconds": time.perf_counter() - t0,
            "completion_tokens": sum(len(t["text"]) for t in rec["tokens"]), "chunk_tokens": ctx.inspect_chunk}


def measure_unchunked(checkpoint: str, g: int) -> dict:
    import torch

    from grpo import context, logprobs, threads

    threads.configure()
    ctx, _, _ = context.from_checkpoint(checkpoint, torch.device("cpu"))
    loaded = _peak_mb()
    ids = ctx.prompt_ids(QUESTION)
    batch = ctx.generate([ids] * g, temperature=1.0, max_new_tokens=TOKENS, generator=torch.Generator().manual_seed(0))
    sampled = _peak_mb()
    t0 = time.perf_counter()
    with torch.no_grad():  # the old inspector: policy with entropy, then the reference, unchunked
        logprobs.token_logprobs(ctx.policy, batch, 1.0, with_entropy=True)
        logprobs.token_logprobs(ctx.policy, batch, 1.0)
    return {"peak_rss_mb": _peak_mb(), "after_load_rss_mb": loaded, "after_sampling_rss_mb": sampled,
            "seconds": time.perf_counter() - t0, "completion_tokens": int(batch.completion_mask.sum())}


def child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "trainer")}
    p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: {p.stderr[-2000:]}")
    return json.loads(p.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/inspect-memory-cpu.json")
    ap.add_argument("--measure", choices=("inspector", "unchunked"))
    ap.add_argument("--checkpoint")
    ap.add_argument("--g", type=int, default=1)
    args = ap.parse_args()
    if args.measure == "inspector":
        print(json.dumps(measure_inspector(args.checkpoint)))
        return
    if args.measure == "unchunked":
        print(json.dumps(measure_unchunked(args.checkpoint, args.g)))
        return

    import torch
    from safetensors.torch import load_file

    from grpo import tiny_hf
    from hostinfo import cpu_model

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(tiny_hf.write_checkpoint(Path(tmp) / "qwen2-151936", "qwen2", vocab_size=VOCAB, **BODY))
        params = sum(t.numel() for t in load_file(Path(ckpt) / "model.safetensors").values())
        inspector = child("--measure", "inspector", "--checkpoint", ckpt)
        old = {g: child("--measure", "unchunked", "--checkpoint", ckpt, "--g", str(g)) for g in (1, 2)}
    per_g = old[2]["peak_rss_mb"] - old[1]["peak_rss_mb"]
    out = {
        "machine": f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs",
        "device": "cpu", "torch": torch.__version__,
        "model": f"random Qwen2, vocabulary {VOCAB:,}, hidden {BODY['hidden_size']}, {BODY['num_hidden_layers']} "
                 f"layers ({params:,} parameters)",
        "request": {"type": "sample_group", "num_generations": G, "max_completion_length": TOKENS},
        "goal_peak_rss_mb": GOAL_MB,
        "inspector": inspector,
        "meets_goal": inspector["peak_rss_mb"] < GOAL_MB,
        "unchunked_measured": {f"G={g}": r for g, r in old.items()},
        "unchunked_extrapolated_G16_peak_rss_mb": old[1]["peak_rss_mb"] + per_g * (G - 1),
        "float32_logits_bytes_per_model_G16": G * TOKENS * VOCAB * 4,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
