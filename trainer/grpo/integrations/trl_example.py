"""A small real TRL GRPO run with `attach`, on the CPU in seconds: the example the README shows, and the
fixture of the tests, the overhead benchmark and the VS Code end-to-end set-up.

    PYTHONPATH=trainer python -m grpo.integrations.trl_example --run-dir runs/trl-demo --output-dir /tmp/trl-out

With no --model it writes a tiny random Qwen2 (grpo.tiny_hf: byte-level BPE tokenizer, chat template) under
the output directory. Prompts are chat messages; two reward functions (digits, brevity) so that TRL logs
per-function columns and groups have different rewards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

QUESTIONS = ["What is 12 plus 30?", "Solve for x: 2x + 3 = 11.", "Natalia sold 48 clips in April.",
             "What is 7 times 6?", "Half of 1,000 dollars is?", "Subtract 3 from 11."]


def digits(completions, **kwargs) -> list[float]:
    """Share of digit characters in the completion."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]


def brevity(completions, **kwargs) -> list[float]:
    """1 for an empty completion, falling linearly to 0 at 40 characters."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [max(0.0, 1.0 - len(t) / 40) for t in texts]


def tiny_trainer(model: str | Path, output_dir: str | Path, *, steps: int = 3, beta: float = 0.04,
                 num_iterations: int = 1, num_generations: int = 4, prompts_per_step: int = 2,
                 max_completion_length: int = 8, save_steps: int = 0, log_completions: bool = False,
                 seed: int = 0, **extra):
    """A `trl.GRPOTrainer` on `model` (a local model directory), float32 on the CPU."""
    import datasets
    import trl

    rows = [{"prompt": [{"role": "user", "content": q}], "answer": str(i)} for i, q in enumerate(QUESTIONS)]
    train = datasets.Dataset.from_list(rows * max(1, steps * prompts_per_step // len(rows) + 1))
    args = trl.GRPOConfig(
        output_dir=str(output_dir), max_steps=steps, num_generations=num_generations,
        per_device_train_batch_size=prompts_per_step * num_generations, gradient_accumulation_steps=1,
        num_iterations=num_iterations, beta=beta, max_completion_length=max_completion_length,
        learning_rate=1e-3, logging_steps=1, seed=seed, use_cpu=True, bf16=False,
        gradient_checkpointing=False, model_init_kwargs={"dtype": "float32", "attn_implementation": "sdpa"},
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        report_to="none", disable_tqdm=True, log_completions=log_completions, dataloader_num_workers=0,
        **extra)
    return trl.GRPOTrainer(model=str(model), reward_funcs=[digits, brevity], args=args, train_dataset=train)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", help="the GRPO Studio run directory (omit to train without attach)")
    ap.add_argument("--output-dir", required=True, help="TRL's output_dir")
    ap.add_argument("--model", help="a local model directory (default: a tiny random Qwen2 written here)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--save-steps", type=int, default=2)
    ap.add_argument("--log-samples-steps", type=int, default=1)
    ap.add_argument("--beta", type=float, default=0.04)
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model = args.model
    if model is None:
        from .. import tiny_hf

        model = str(tiny_hf.write_checkpoint(Path(args.output_dir) / "tiny-qwen2", "qwen2"))
    trainer = tiny_trainer(model, args.output_dir, steps=args.steps, save_steps=args.save_steps, beta=args.beta)
    if args.run_dir:
        from .trl import attach

        attach(trainer, args.run_dir, log_samples_steps=args.log_samples_steps)
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
