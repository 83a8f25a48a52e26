"""One policy context: what samples, rewards and scores a group, built once for training and inspection.

From the settings and a model (`for_training`) or a checkpoint (`from_checkpoint`) it builds the policy, the
reference, the tokenizer, the task, the prompt formatter (the task's words under the chat template and system
prompt), the rewarder with the configured verifier, the rollout engine and the chunked scorer. `train`,
`serve`, `sample`, `eval` and live inspection requests all go through it, so a group the inspector samples is
prompted, sampled, rewarded and given advantages exactly as a training step would.

The reference: a separate model (full fine-tuning: the policy when GRPO started, or after an iterative-RL
reset its ref/), the policy with its adapters disabled (LoRA), or — before GRPO starts, when it is not fixed
yet — the policy itself. Scoring is chunked over the vocabulary and micro-batched: inspection never holds
whole-vocabulary logits for a whole batch (`INSPECT_LOGITS_BYTES`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import torch

from . import checkpoint, engines, evaluation, groups, logprobs, microbatch, models, plugins, prompts, rollout, sft, \
    tasks, verify
from .config import Config
from .rewards import Rewarder, Scored
from .rundir import resolve_checkpoint, run_settings

log = logging.getLogger("grpo")

# float32 logits one inspection scoring chunk may hold (64 MB: 110 positions of a 151,936-token vocabulary)
INSPECT_LOGITS_BYTES = 64 << 20


@dataclass
class Source:
    """Where a context's models come from, as inspection answers report it."""

    checkpoint: str | None      # None: the live policy of a running trainer
    step: int | None
    phase: str | None
    reference: str              # where the reference comes from, in words
    run_dir: Path | None = None  # the run it belongs to (replay reads its records); not reported

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "step": self.step, "phase": self.phase, "reference": self.reference,
                **extra}


@contextlib.contextmanager
def eval_mode(*modules) -> Iterator[None]:
    """Sampling and scoring in eval mode, under no_grad; the previous modes are restored."""
    was = [m.training for m in modules]
    try:
        with torch.no_grad():
            for m in modules:
                m.eval()
            yield
    finally:
        for m, w in zip(modules, was):
            m.train(w)


def score_batch(model, batch: rollout.Batch, temperature: float, dtype, chunk_tokens: int, micro_batch_size: int,
                *, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (and entropy) of the batch's completions under `model`, in eval mode and without
    gradients: chunked over the vocabulary, `micro_batch_size` sequences at a time. What a step scores π_ref
    and π_old with, and what replay measures a step's Δ log π with."""
    with eval_mode(model):
        scorer = logprobs.Scorer(model, chunk_tokens, dtype)

        def part(mb: rollout.Batch) -> torch.Tensor:
            logp, ent = logprobs.score(scorer, mb, temperature, with_entropy=with_entropy)
            return torch.stack([logp, ent if ent is not None else torch.zeros_like(logp)], dim=-1)

        out = microbatch.score_in_parts(part, batch, micro_batch_size)
    return out[..., 0], (out[..., 1] if with_entropy else None)


class PolicyContext:
    def __init__(self, settings: Config, device: torch.device, policy, tokenizer, task: tasks.Task,
                 reference=None, model_path: str | None = None, run_dir: Path | None = None):
        self.settings, self.device, self.policy, self.tokenizer, self.task = settings, device, policy, tokenizer, task
        self.run_dir = run_dir            # whose settings these are: no user code is imported from inside it
        self.reference = reference        # a separate model; None: LoRA's adapter-free base, else the policy
        self.lora = models.is_lora(policy)
        self.dtype = models.compute_dtype(settings.dtype, device)
        self.prompt = prompts.formatter(tokenizer, settings.chat_template, settings.system_prompt, task)
        self.chat = prompts.uses_chat_template(tokenizer, settings.chat_template)
        self.verifier = verify.resolve(settings.verifier, task.verifier)
        self.check = verify.checker(self.verifier, verify.fallback(settings.answer_fallback, task))
        engine = settings.rollout_engine
        if engine == "auto" and settings.fsdp:  # static's compiled graphs are not run on gathered FSDP weights
            engine = "kv_cache"
        self.engine = engines.make(engine, device, self.dtype, model_path)

    @functools.cached_property
    def rewarder(self) -> Rewarder:
        """Built on first use: a `serve` whose run named a reward function this process cannot import still
        answers `score` and `compare`."""
        s = self.settings
        return Rewarder(self.verifier, s.reward, s.reward_function, self.task, self.run_dir,
                        fallback=verify.fallback(s.answer_fallback, self.task), reward_funcs=s.reward_funcs,
                        reward_weights=s.reward_weights)

    def reward(self, rows: list[dict], texts: list[str], completion_ids: list[list[int]] | None,
               step: int = 0) -> Scored:
        """The rewarder on completions of `rows` (one row per completion), with what TRL-style reward functions
        receive: the prompt as the model saw it (messages under a chat template, as TRL's conversational
        format; else its text), the completions' token ids and the rows' dataset columns. A row whose answer
        is None (a question from outside the task) gets reward 0 unless reward_funcs score it. A training step
        and the `rescore` request (an edited completion) both reward with this."""
        s = self.settings
        if any(r["answer"] is None for r in rows) and not self.rewarder.funcs:
            scored = Scored([0.0] * len(texts), [False] * len(texts))
            if s.reward == "process":
                for r, c in zip(rows, texts):
                    rs, ends = self.task.steps(r["question"], c)
                    scored.step_rewards.append(rs)
                    scored.step_ends.append(ends)
            return scored
        prompts_ = [prompts.messages(r["question"], s.system_prompt, self.task) if self.chat else r["prompt"]
                    for r in rows] if self.rewarder.funcs else None
        columns = [r.get("columns") or {"question": r["question"], "answer": r["answer"]} for r in rows]
        return self.rewarder([r["question"] for r in rows], texts, [r["answer"] for r in rows], prompts=prompts_,
                             completion_ids=completion_ids, columns=columns, step=step, max_steps=s.max_steps)

    @property
    def inspect_chunk(self) -> int:
        """Positions per scoring chunk for inspection: the run's setting, capped by INSPECT_LOGITS_BYTES."""
        vocab = int(getattr(self.policy.config, "vocab_size", 0) or len(self.tokenizer))
        cap = max(1, INSPECT_LOGITS_BYTES // (4 * vocab))
        setting = self.settings.logprob_chunk_tokens
        return min(setting, cap) if setting > 0 else cap

    # ------------------------------------------------------------------------------------------ collect
    def prompt_ids(self, question: str) -> list[int]:
        return sft.encode(self.tokenizer, self.prompt(question))

    def questions(self, rng, n: int) -> tuple[list[dict], list[list[int]], int]:
        """`n` task rows with their prompts (text in the row, and ids), and how many drawn questions were
        skipped for a prompt longer than max_prompt_length. A file's rows were checked once at set-up
        (Task.fit_prompts); a question a task makes as it is drawn is checked here."""
        limit = self.settings.max_prompt_length
        rows, prompt_ids, skipped = [], [], 0
        while len(rows) < n:
            for r in self.task.questions(rng, n - len(rows)):
                text = self.prompt(r["question"])
                ids = sft.encode(self.tokenizer, text)
                if len(ids) > limit:
                    skipped += 1
                    if skipped > 100 * n:
                        raise ValueError("setting 'max_prompt_length': every prompt is longer than it")
                    continue
                rows.append({**r, "prompt": text})
                prompt_ids.append(ids)
        return rows, prompt_ids, skipped

    def prompt_lengths(self, questions: list[str], batch: int = 256) -> list[int]:
        """Tokens in each question's prompt, encoded a batch at a time (a task's rows, checked at set-up)."""
        out: list[int] = []
        for i in range(0, len(questions), batch):
            texts = [self.prompt(q) for q in questions[i: i + batch]]
            out += [len(ids) for ids in sft.encode_many(self.tokenizer, texts)]
        return out

    def generate(self, prompt_ids: list[list[int]], *, temperature: float, max_new_tokens: int,
                 generator: torch.Generator | None, model=None) -> rollout.Batch:
        """Completions from the policy (or `model`, e.g. the frozen SFT model of offline RFT) by the configured
        engine (one per prompt; repeat a prompt G times)."""
        tok, model = self.tokenizer, self.policy if model is None else model
        with eval_mode(model):
            return self.engine.generate(model, prompt_ids, max_new_tokens=max_new_tokens, eos_id=tok.eos_token_id,
                                        pad_id=tok.pad_token_id, temperature=temperature, top_p=self.settings.top_p,
                                        generator=generator)

    def roll_out(self, rows: list[dict], prompt_ids: list[list[int]], G: int, generator: torch.Generator | None,
                 temperature: float | None = None, max_new_tokens: int | None = None, model=None,
                 step: int = 0) -> groups.Group:
        """G completions of each row's prompt (from the policy, or `model`), rewarded, with advantages: a GRPO
        step's collect (`step`: the steps done before it, TRL's trainer_state.global_step). A row whose answer
        is None gets reward 0 (`reward`)."""
        s, tok = self.settings, self.tokenizer
        batch = self.generate([p for p in prompt_ids for _ in range(G)],
                              temperature=s.temperature if temperature is None else temperature,
                              max_new_tokens=s.max_completion_length if max_new_tokens is None else max_new_tokens,
                              generator=generator, model=model)
        texts = tok.batch_decode(batch.completion_ids, skip_special_tokens=True)
        ids = [row[:n] for row, n in zip(batch.completion_ids.tolist(), batch.lengths.tolist())]
        scored = self.reward([r for r in rows for _ in range(G)], texts, ids, step)
        advantages, seq_adv, ends = groups.compute_advantages(tok, batch, scored, G, s.reward, s.scale_rewards)
        return groups.Group(rows, batch, texts, scored, advantages, seq_adv, ends)

    # ------------------------------------------------------------------------------------------ score
    @contextlib.contextmanager
    def as_reference(self) -> Iterator[Any]:
        """The model to run as the reference."""
        if self.reference is not None:
            yield self.reference
        elif self.lora:
            with self.policy.disable_adapter():
                yield self.policy
        else:
            yield self.policy

    def score_group(self, group: groups.Group, temperature: float, with_old: bool) -> None:
        """π_ref's log-probs of a group's completions (and π_old's, the policy before any update, when
        `with_old`: μ > 1 or a method that needs them), no gradients, into the group."""
        if with_old:
            group.old_logp = self.score(group.batch, temperature)[0]
        group.ref_logp = self.score(group.batch, temperature, reference=True)[0]

    def score(self, batch: rollout.Batch, temperature: float, *, reference: bool = False, with_entropy: bool = False,
              chunk_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs (and entropy) of the batch's completions under the policy or the reference, no
        gradients: chunked over the vocabulary, `micro_batch_size` sequences at a time."""
        chunk = self.settings.logprob_chunk_tokens if chunk_tokens is None else chunk_tokens
        with contextlib.ExitStack() as stack:
            model = stack.enter_context(self.as_reference()) if reference else self.policy
            stack.enter_context(eval_mode(self.policy))
            return score_batch(model, batch, temperature, self.dtype, chunk, self.settings.micro_batch_size,
                               with_entropy=with_entropy)

    def evaluate(self, rows: list[dict], *, max_new_tokens: int | None = None, samples: int = 0,
                 ks: tuple[int, ...] = evaluation.DEFAULT_K, temperature: float = 1.0,
                 generator: torch.Generator | None = None, should_stop=None) -> evaluation.Report:
        """Held-out evaluation as training runs it (the training prompt, the configured verifier and engine):
        greedy accuracy, and with `samples` = n > 0 pass@k and maj@k from n completions per question.
        `should_stop()`, asked between batches, ends it early with evaluation.Stopped."""
        return evaluation.evaluate(self.policy, self.tokenizer, rows, max_new_tokens or self.settings.max_completion_length,
                                   prompt_fn=self.prompt, check=self.check, engine=self.engine, samples=samples, ks=ks,
                                   temperature=temperature, top_p=self.settings.top_p, generator=generator,
                                   should_stop=should_stop)


# ---------------------------------------------------------------------------------------------- factories
def for_training(settings: Config, device: torch.device, source: str, run_dir: Path | None = None) -> PolicyContext:
    """The context a run trains in: `source` is the model setting or the checkpoint it resumes from. The
    reference is fixed later, when GRPO starts (`Trainer._grpo_setup`)."""
    task = tasks.load(settings, run_dir)
    try:
        policy, tok = models.load(source, settings.seed, device, models.Options.from_config(settings),
                                  safetensors_only=source != settings.model)
    except (OSError, ValueError, ImportError, KeyError) as e:
        if source != settings.model:  # a checkpoint being resumed
            raise checkpoint.CheckpointError(f"checkpoint {source}: cannot be loaded: {e}") from None
        raise ValueError(f"setting 'model' ({settings.model}): cannot be loaded as a Hugging Face model directory "
                         f"(config.json, weights and tokenizer files): {type(e).__name__}: {e}") from None
    model_path = None if settings.model == models.BUILTIN else settings.model
    ctx = PolicyContext(settings, device, policy, tok, task, model_path=model_path, run_dir=run_dir)
    task.fit_prompts(ctx.prompt_lengths, settings.max_prompt_length)  # once: never re-tokenised while training
    ctx.rewarder  # noqa: B018 - a bad reward setting fails before any training
    return ctx


def from_checkpoint(path: str | Path, device: torch.device | None = None, user_code: bool = True, **overrides: Any
                    ) -> tuple[PolicyContext, Source, Path | None]:
    """A checkpoint's policy, the reference that was in force for it, and its run's settings (`overrides`
    replace some: `grpo sample`'s flags), for serving requests, sampling and evaluation. The user code the
    run's settings name (plugins.py) is named in the log before it is imported; `user_code=False` imports
    none of it (the task then knows no answers, and rewards come from the verifier)."""
    ckpt, run_dir = resolve_checkpoint(path)
    for d in {ckpt, reference_dir(ckpt)}:  # damaged files are named before any weights are read
        checkpoint.check(d)
    settings = replace(run_settings(run_dir), **overrides)
    named = plugins.named_code(settings)
    if named and not user_code:
        log.warning("not importing the user code this run names (%s)", ", ".join(c.spec for c in named))
        # the task: an empty tasks.Task below
        settings = replace(settings, reward_function="", reward_funcs="", reward_weights="")
    for code in named if user_code else ():
        plugins.check(code, run_dir)  # refused before any weights are read (load_object says what it imports)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    options = models.Options(dtype=settings.dtype, attn_implementation=settings.attn_implementation)
    policy, tok = models.load(str(ckpt), 0, device, options, safetensors_only=True)
    reference = None
    if models.is_lora(policy):
        where = "the base model with adapters disabled (LoRA)"
    else:
        ref_path = reference_dir(ckpt)
        if ref_path != ckpt:
            reference = models.load(str(ref_path), 0, device, options, safetensors_only=True)[0].eval() \
                .requires_grad_(False)
        where = "its own ref/ (iterative RL)" if ref_path.name == "ref" else (
            "the policy itself" if ref_path == ckpt else ref_path.name)
    try:
        task = tasks.Task() if not user_code and any(c.setting == "task" for c in named) else tasks.load(settings, run_dir)
    except plugins.UntrustedCode:
        raise
    except (OSError, ValueError) as e:  # the run's data moved away: the checkpoint still answers
        log.warning("the run's task is not available here (%s); questions get no reference answers", e)
        task = tasks.Task()
    state = checkpoint.read_state(ckpt) if (ckpt / "trainer_state.json").is_file() else {}
    ctx = PolicyContext(settings, device, policy.eval(), tok, task, reference, model_path=str(ckpt), run_dir=run_dir)
    return ctx, Source(str(ckpt), state.get("step"), state.get("phase"), where, run_dir), run_dir


def reference_dir(ckpt: Path) -> Path:
    """The reference that was in force for this checkpoint: its own ref/ after an iterative-RL reset, else
    the run's starting policy (step_000000), else the checkpoint itself (SFT checkpoints: the reference is
    only fixed when GRPO starts, so the policy is its own reference)."""
    ckpt = Path(ckpt)
    if (ckpt / "ref" / "config.json").is_file():
        return ckpt / "ref"
    start = ckpt.parent / "step_000000"
    if ckpt.name.startswith("sft_") or not (start / "config.json").is_file():
        return ckpt
    return start
