"""GRPO throughput on one GPU: this trainer end to end, its rollouts against transformers' generate(), and
TRL's GRPOTrainer as a baseline, on the same model and batch, in one run.

    PYTHONPATH=trainer .venv/bin/python bench/gpu/grpo_gpu.py --name h100-qwen2.5-0.5b            # on a GPU
    PYTHONPATH=trainer .venv/bin/python bench/gpu/grpo_gpu.py --shape 1.5b --name h100-qwen2.5-1.5b
    PYTHONPATH=trainer .venv/bin/python bench/gpu/grpo_gpu.py --smoke --out /tmp/smoke.json      # CPU, seconds

The model is built from a config shaped like Qwen2.5-0.5B (or 1.5B) with random weights — nothing is
downloaded — and a byte-level BPE tokenizer built locally. Every question encodes to exactly
`--prompt-tokens` tokens; a random model rarely emits EOS, so completions run to `--completion-tokens`
(the worst case for the batch). The batch: G = 16 completions × 32 questions per step.

Measured, after `--warmup` steps:
- tokens_per_second_end_to_end: (prompt + completion tokens of the step's N sequences) / step wall time,
  per GPU (verl's throughput convention);
- generation_tokens_per_second: completion tokens / time of this trainer's rollout engine on the step's
  batch; hf_generate_tokens_per_second: the same batch through `model.generate()` on a bfloat16 copy;
- mfu_train: 6 · N_params · trained tokens / training time / peak bf16 FLOP/s (989.4 TFLOP/s for H100/H200
  SXM dense; attention FLOPs not counted). Also against a measured 8192³ bf16 matmul;
- step-time split: rollout, scoring (reference and old-policy log-probs), training;
- peak_memory_gb: torch.cuda.max_memory_allocated over this trainer's run;
- trl_tokens_per_second_end_to_end: TRL's GRPOTrainer (transformers generate path, no vLLM) with the same
  model, G, batch, lengths, β, loss and precision, same convention.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "trainer"))

from grpo import config as config_mod, engines, models, protocol, tiny_hf  # noqa: E402
from grpo.loop import run_training  # noqa: E402
from grpo.progress import Progress  # noqa: E402

SHAPES = {
    # Qwen2.5-0.5B / 1.5B (config.json of the published checkpoints: sizes only)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True),
}
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def spec_peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def measured_matmul_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192 ** 3 * n / (time.perf_counter() - t0) / 1e12


def build_model(path: Path, shape: str) -> int:
    fields = dict(SHAPES[shape])
    vocab = fields.pop("vocab_size")
    tiny_hf.write_checkpoint(path, "qwen2", seed=0, max_position_embeddings=4096, rope_theta=1_000_000.0, **fields)
    # the tokenizer has ~400 entries; the embedding is widened to the real vocabulary size
    cfg = json.loads((path / "config.json").read_text())
    if cfg["vocab_size"] != vocab:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path)
        model.resize_token_embeddings(vocab)
        model.save_pretrained(path, safe_serialization=True)
    return vocab


def questions(tokenizer, n: int, prompt_tokens: int) -> list[str]:
    """n distinct questions, each exactly `prompt_tokens` tokens once '\\n' is appended."""
    out = []
    words = ["apples", "trains", "seven", "boxes", "sums", "rivers", "clocks", "paint"]
    for i in range(n):
        text = f"Question {i}:"
        k = 0
        while len(tokenizer(text + "\n", add_special_tokens=False)["input_ids"]) < prompt_tokens:
            text += " " + words[(i + k) % len(words)]
            k += 1
        while len(tokenizer(text + "\n", add_special_tokens=False)["input_ids"]) > prompt_tokens:
            text = text[:-1]
        out.append(text)
    return out


def run_ours(model_dir: Path, data: Path, work: Path, args) -> dict:
    steps = args.warmup + args.steps
    overrides = {
        "model": str(model_dir), "task": str(data), "sft_steps": 0, "max_steps": steps,
        "num_generations": args.G, "questions_per_step": args.questions, "max_prompt_length": args.prompt_tokens + 8,
        "max_completion_length": args.completion_tokens, "eval_size": 1, "eval_steps": 0, "save_steps": 0,
        "log_samples_steps": 0, "verifier": "number", "chat_template": "off", "beta": 0.04, "loss_type": "grpo",
        "micro_batch_size": args.micro_batch, "rollout_engine": args.engine, "dtype": args.dtype,
        "gradient_checkpointing": args.gradient_checkpointing, "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    cfg = config_mod.build_config(overrides)
    run_dir = work / "run"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with open(os.devnull, "w") as sink:
        code = run_training(cfg, run_dir, protocol.Stream(sink), resume=False, progress=Progress(enabled=False))
    if code != 0:
        raise RuntimeError(f"training failed: {(run_dir / 'status.json').read_text()}")
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    n = args.G * args.questions
    kept = rows[args.warmup:]
    step_times = [b["time"] - a["time"] for a, b in zip(rows[args.warmup - 1:], kept)] if args.warmup else \
        [r["time/generate"] + r["time/train"] for r in kept]
    tokens = [n * (args.prompt_tokens + r["completion_length/mean"]) for r in kept]
    gen = [r["time/generate"] for r in kept]
    train = [r["time/train"] for r in kept]
    score = [max(0.0, s - g - t) for s, g, t in zip(step_times, gen, train)]
    return {"rows": kept, "step_times": step_times, "tokens": tokens, "gen": gen, "train": train, "score": score,
            "peak_memory_gb": peak, "cfg": cfg}


def rollout_comparison(model_dir: Path, prompts: list[list[int]], tok, args) -> dict:
    """This trainer's engine vs transformers generate() on one batch, same bfloat16 weights."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = models.compute_dtype(args.dtype, device)
    model, _ = models.load(str(model_dir), 0, device, models.Options(dtype=args.dtype))
    model.eval()
    out = {}
    for name in (engines.resolve(args.engine, device), "hf_generate"):
        eng = engines.make(name, device, dtype)
        kw = dict(max_new_tokens=args.completion_tokens, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                  temperature=1.0, generator=torch.Generator(device=device).manual_seed(0))
        eng.generate(model, prompts[: max(1, len(prompts) // 8)], **{**kw, "max_new_tokens": 8})  # warm-up / compile
        dt = float("inf")
        for _ in range(2):  # best of two
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            batch = eng.generate(model, prompts, **kw)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = min(dt, time.perf_counter() - t0)
        out[name] = {"tokens": int(batch.completion_mask.sum()), "seconds": dt,
                     "tokens_per_second": int(batch.completion_mask.sum()) / dt}
    del model
    return out


def run_trl(model_dir: Path, texts: list[str], args) -> dict:
    """TRL's GRPOTrainer on the same model and batch: G completions for `questions` prompts per optimizer
    step (per_device_train_batch_size × gradient_accumulation_steps = G × questions)."""
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    cuda = torch.cuda.is_available()
    n = args.G * args.questions
    micro = args.micro_batch if args.micro_batch else n
    stamps: list[float] = []
    logs: list[dict] = []

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        def on_log(self, a, state, control, logs=None, **kw):
            if logs:
                logs_list.append(dict(logs))

    logs_list = logs

    def reward(completions, **kw):
        return [float(len(c) % 2) for c in completions]  # anything with variance: the compute is the same

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    cfg = GRPOConfig(
        output_dir=str(model_dir.parent / "trl"), num_generations=args.G, per_device_train_batch_size=micro,
        gradient_accumulation_steps=max(1, n // micro), max_completion_length=args.completion_tokens,
        beta=0.04, loss_type="grpo", scale_rewards="group", temperature=1.0, learning_rate=1e-6,
        max_steps=args.warmup + args.steps, logging_steps=1, save_strategy="no", report_to="none",
        bf16=cuda and args.dtype != "float32", use_cpu=not cuda, gradient_checkpointing=args.gradient_checkpointing,
        shuffle_dataset=False, dataloader_num_workers=0, disable_dropout=True,
        model_init_kwargs={"dtype": torch.float32},
    )
    data = Dataset.from_list([{"prompt": t + "\n"} for t in texts])
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=reward, args=cfg, train_dataset=data,
                          processing_class=tok, callbacks=[Clock()])
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.train()
    times = [b - a for a, b in zip([t0] + stamps[:-1], stamps)][args.warmup:]
    lens = [r.get("completions/mean_length") for r in logs if "completions/mean_length" in r][args.warmup:]
    tokens = [n * (args.prompt_tokens + (ln if ln is not None else args.completion_tokens)) for ln in lens] or \
        [n * (args.prompt_tokens + args.completion_tokens)] * len(times)
    del trainer
    return {"step_times": times, "tokens": tokens[: len(times)], "trl_version": __import__("trl").__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default=None, help="results name: bench/results/<name>.json")
    ap.add_argument("--out", default=None, help="explicit output path (overrides --name)")
    ap.add_argument("--shape", default="0.5b", choices=sorted(SHAPES))
    ap.add_argument("--smoke", action="store_true", help="tiny shape and batch on whatever device: seconds on CPU")
    ap.add_argument("--G", type=int, default=16)
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--completion-tokens", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--micro-batch", type=int, default=32, help="sequences per forward/backward (ours and TRL's)")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--skip-hf-generate", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.shape, args.G, args.questions, args.prompt_tokens, args.completion_tokens = "smoke", 4, 2, 16, 12
        args.steps, args.warmup, args.micro_batch = 2, 1, 4
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"{args.name or 'gpu-' + args.shape}.json"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        build_model(model_dir, args.shape)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        n_questions = args.questions * (args.warmup + args.steps) + 16
        texts = questions(tok, n_questions, args.prompt_tokens)
        data = work / "questions.jsonl"
        data.write_text("".join(json.dumps({"question": t, "answer": "0"}) + "\n" for t in texts))
        ours = run_ours(model_dir, data, work, args)
        n_params = sum(p.numel() for p in models.load(str(model_dir), 0, torch.device("cpu"))[0].parameters())
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        prompts = [tok(t + "\n", add_special_tokens=False)["input_ids"] for t in texts[: args.questions]]
        prompts = [p for p in prompts for _ in range(args.G)]
        rollouts = {} if args.skip_hf_generate else rollout_comparison(model_dir, prompts, tok, args)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        trl = None if args.skip_trl else run_trl(model_dir, texts, args)

    name = device_name()
    peak = spec_peak_tflops(name)
    measured = measured_matmul_tflops()
    tot_time, tot_tokens = sum(ours["step_times"]), sum(ours["tokens"])
    n = args.G * args.questions
    trained_tokens = [n * args.prompt_tokens + n * r["completion_length/mean"] for r in ours["rows"]]
    train_flops = 6 * n_params * sum(trained_tokens) * ours["cfg"].num_iterations
    mfu = (train_flops / sum(ours["train"]) / (peak * 1e12)) if peak else None
    engine_name = engines.resolve(args.engine, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    result = {
        "device": name,
        "model": f"Qwen2.5-{args.shape.upper()}-shaped (random weights, from config)" if args.shape != "smoke"
        else "tiny Qwen2 (smoke)",
        "n_params": n_params,
        "batch": {"G": args.G, "questions_per_step": args.questions, "prompt_tokens": args.prompt_tokens,
                  "max_completion_tokens": args.completion_tokens, "micro_batch_size": args.micro_batch,
                  "steps_measured": args.steps, "warmup_steps": args.warmup},
        "rollout_engine": engine_name,
        "tokens_per_second_end_to_end": tot_tokens / tot_time,
        "generation_tokens_per_second": rollouts.get(engine_name, {}).get("tokens_per_second"),
        "generation_tokens_per_second_in_loop": sum(n * r["completion_length/mean"] for r in ours["rows"]) / sum(ours["gen"]),
        "hf_generate_tokens_per_second": rollouts.get("hf_generate", {}).get("tokens_per_second"),
        "trl_tokens_per_second_end_to_end": (sum(trl["tokens"]) / sum(trl["step_times"])) if trl and trl["step_times"] else None,
        "trl_version": trl["trl_version"] if trl else None,
        "mfu_train": mfu,
        "mfu_train_vs_measured_matmul": (train_flops / sum(ours["train"]) / (measured * 1e12)) if measured else None,
        "peak_bf16_tflops_spec": peak,
        "matmul_bf16_tflops_measured": measured,
        "peak_memory_gb": ours["peak_memory_gb"],
        "step_seconds": sum(ours["step_times"]) / len(ours["step_times"]),
        "step_time_split": {
            "rollout": sum(ours["gen"]) / tot_time, "scoring": sum(ours["score"]) / tot_time,
            "train": sum(ours["train"]) / tot_time,
        },
        "completion_length_mean": sum(r["completion_length/mean"] for r in ours["rows"]) / len(ours["rows"]),
        "torch": torch.__version__,
        "smoke": args.smoke,
    }
    if result["generation_tokens_per_second"] and result["hf_generate_tokens_per_second"]:
        result["rollout_speedup_vs_hf_generate"] = result["generation_tokens_per_second"] / result["hf_generate_tokens_per_second"]
    if result["trl_tokens_per_second_end_to_end"]:
        result["speedup_vs_trl"] = result["tokens_per_second_end_to_end"] / result["trl_tokens_per_second_end_to_end"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
