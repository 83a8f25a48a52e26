"""A live TRL `GRPOTrainer` writing a GRPO Studio run directory: one call before `trainer.train()`.

    from grpo.integrations.trl import attach
    attach(trainer, "runs/my-trl-run", log_samples_steps=10)
    trainer.train()

What it hooks, on the trainer instance only (TRL itself is not modified):
- a `TrainerCallback`: status.json and config.json at train begin, a metrics row per `on_log` (TRL's names
  mapped to ours), `checkpoints/step_N` per `on_save` (TRL's `checkpoint-N` model files hard-linked), the
  starting model as `checkpoints/step_000000` (the reference), finished/stopped at train end;
- `trainer.train`, wrapped so that an exception marks the run failed (with its message) and Ctrl-C stopped;
  SIGTERM, whose default action ends the process without unwinding, marks it stopped first (then ends it);
- `trainer._generate_and_score_completions`, wrapped so that every `log_samples_steps` steps the first group
  of the generation batch is recorded whole before `_prepare_inputs` shuffles it: completion ids, advantages,
  `ref_per_token_logps` and `old_per_token_logps` from TRL's own tensors; log-probs and entropy under the
  current policy, which TRL keeps only inside `_compute_loss`, from our chunked scorer on those G rows.

Only the main process (rank 0 under accelerate/torchrun) writes; the others are left untouched. Nothing here
may break training: a failure to record a group becomes a `warning` event.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from .. import logprobs, models, protocol
from ..groups import Group, group_record  # the one definition of a logged group
from ..rewards import Scored
from ..rollout import Batch
from ..rundir import RunDir
from . import trl_format

log = logging.getLogger("grpo")

# Dataset columns whose string value is taken as a group's reference answer, first match wins.
ANSWER_COLUMNS = ("answer", "solution", "ground_truth", "reference", "target")
SCORE_CHUNK_TOKENS = 4096


def _transformers_callback_base():
    from transformers import TrainerCallback
    return TrainerCallback


class Attachment:
    """What `attach` installed; `run` is None on processes other than the main one."""

    def __init__(self, trainer, run_dir: Path, log_samples_steps: int):
        self.trainer, self.run_dir, self.log_samples_steps = trainer, Path(run_dir), log_samples_steps
        self.run: RunDir | None = None
        self.started_at: float | None = None
        self.last_sampled_step = -1
        self._reference = None        # loaded lazily when TRL has none (beta = 0) and a group is logged
        self._warned: set[str] = set()

    # ------------------------------------------------------------------------------------------- lifecycle
    def begin(self, state) -> None:
        resumed = state.global_step if state.global_step > 0 else None
        if resumed is None and (self.run_dir / "config.json").exists():
            raise ValueError(f"attach: {self.run_dir} already holds a run; choose another run directory")
        model_name = _model_name(self.trainer)
        run = RunDir(self.run_dir)
        cfg = trl_format.config_from_trl(self.trainer.args, model_name, self.log_samples_steps)
        run.start(cfg, max_steps=max(0, int(state.max_steps)), sft_steps=0, resumed_from=resumed)
        self.run = run
        self.started_at = time.time()
        if resumed is None:
            self._save_start(model_name)
        run.update(phase="grpo", step=state.global_step)
        run.event("phase", state.global_step, phase="grpo", source="trl")

    def _save_start(self, model_name: str) -> None:
        """The model TRL starts from, as step_000000 (our readers' reference): hard links of a local model
        directory, else save_pretrained before the first update."""
        src = Path(model_name)
        if (src / "config.json").is_file() or (src / "adapter_config.json").is_file():
            trl_format.write_checkpoint(self.run, 0, src=src, trusted=True, source="trl", reference=model_name)
            return
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        tok = self.trainer.processing_class

        def save(tmp: Path) -> None:
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        trl_format.write_checkpoint(self.run, 0, save=save, source="trl", reference=model_name)

    def end(self, state) -> None:
        if self.run is None:
            return
        done = state.max_steps <= 0 or state.global_step >= state.max_steps
        self.run.update(state=protocol.FINISHED if done else protocol.STOPPED, phase="done", step=state.global_step)
        self.run.event("phase", state.global_step, phase="done")

    def fail(self, error: BaseException) -> None:
        if self.run is None or self.run.status.get("state") != protocol.RUNNING:
            return
        step = int(self.trainer.state.global_step)
        if isinstance(error, KeyboardInterrupt):
            self.run.update(state=protocol.STOPPED, step=step)
            self.run.event("control", step, action="stop")
            return
        msg = f"{type(error).__name__}: {error}"
        self.run.event("error", step, message=msg)
        self.run.update(state=protocol.FAILED, error=msg, step=step)

    def killed(self, signum: int) -> None:
        """The process is about to end by `signum`'s default action (SIGTERM): status.json says stopped, and
        an event names the signal, before it does (TRL's last checkpoint is where to resume from)."""
        if self.run is None or self.run.status.get("state") not in (protocol.RUNNING, protocol.PAUSED):
            return
        step = int(self.trainer.state.global_step)
        self.run.update(state=protocol.STOPPED, step=step)
        self.run.event("control", step, action="stop", signal=signal.Signals(signum).name)

    def close(self) -> None:
        if self.run is not None:
            self.run.close()

    def warn(self, code: str, message: str, once: bool = True) -> None:
        if self.run is None or (once and code in self._warned):
            return
        self._warned.add(code)
        self.run.event("warning", int(self.trainer.state.global_step), code=code, message=message)

    # ------------------------------------------------------------------------------------------- records
    def metrics(self, logs: dict[str, Any], state) -> None:
        now = time.time()
        elapsed = now - self.started_at if self.started_at is not None else None
        row = trl_format.metrics_row(logs, int(state.global_step), now, elapsed)
        if row is not None and self.run is not None:
            self.run.metrics(row)

    def checkpoint(self, args, state) -> None:
        src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.run is None or not src.is_dir():
            return
        trl_format.write_checkpoint(self.run, int(state.global_step), src=src, source="trl",
                                    trl_checkpoint=src.name)

    # ------------------------------------------------------------------------------------------- samples
    def sample_due(self) -> int | None:
        """The step to record a group for, if the generation about to be used is due one: the first
        generation serving step 1 or a multiple of log_samples_steps (one generation can serve several
        optimizer steps when num_iterations > 1)."""
        t, n = self.trainer, self.log_samples_steps
        if self.run is None or n <= 0 or not t.model.training:
            return None
        step = int(t.state.global_step) + 1
        if step == self.last_sampled_step:
            return None
        accum = max(1, int(t.args.gradient_accumulation_steps))
        span = max(1, int(t.args.steps_per_generation) * int(t.num_iterations) // accum)
        if any(s == 1 or s % n == 0 for s in range(step, step + span)):
            return step
        return None

    def record_group(self, step: int, inputs: list[dict], out: dict[str, Any]) -> None:
        t = self.trainer
        G = int(t.num_generations)
        if len(inputs) < G:
            self.warn("trl_group_split", f"a process holds {len(inputs)} completions, fewer than a group of "
                      f"{G}: no group is recorded (raise per_device_train_batch_size)")
            return
        if _sharded(t):
            self.warn("trl_sharded", "FSDP / ZeRO-3: scoring a group on one rank would need every rank; "
                      "no group is recorded")
            return
        tok = getattr(t.processing_class, "tokenizer", t.processing_class)
        rows = slice(0, G)
        c_ids, c_mask = out["completion_ids"][rows], out["completion_mask"][rows].clone()
        if t.mask_truncated_completions:  # TRL zeroed the mask of truncated rows; they are full length
            c_mask[c_mask.sum(1) == 0] = 1
        p_ids, p_mask = out["prompt_ids"][rows], out["prompt_mask"][rows]
        keep = p_mask.any(0).nonzero()
        first = int(keep[0]) if len(keep) else 0
        p_ids, p_mask = p_ids[:, first:], p_mask[:, first:]
        lengths = c_mask.sum(1)
        stops = {*t.eos_token_ids, tok.pad_token_id}
        last = c_ids.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        truncated = torch.tensor([int(x) not in stops for x in last.tolist()], dtype=torch.bool)
        batch = Batch(p_ids, p_mask, c_ids, c_mask, truncated)
        model = t.accelerator.unwrap_model(t.model)
        scorer = logprobs.Scorer(model, chunk_tokens=SCORE_CHUNK_TOKENS)
        with torch.no_grad(), t.accelerator.autocast():
            logp, entropy = logprobs.score(scorer, batch, t.temperature, with_entropy=True)
            ref = out.get("ref_per_token_logps")
            if ref is not None:
                ref_logp = ref[rows]
            else:
                ref_logp = self._reference_logps(model, batch)
        old = out.get("old_per_token_logps")
        advantages = out["advantages"][rows].float().cpu()
        seq_adv = advantages if advantages.dim() == 1 else advantages[:, 0]
        rewards, per_function = _group_rewards(t, len(inputs), G)
        lens = lengths.tolist()
        texts = tok.batch_decode([ids[:n] for ids, n in zip(c_ids.tolist(), lens)], skip_special_tokens=True)
        row = {"question": _question(inputs[0].get("prompt")), "answer": _answer(inputs[0]),
               "prompt": tok.decode(p_ids[0][p_mask[0].bool()].tolist(), skip_special_tokens=False)}
        group = Group([row], batch, texts, Scored(rewards, [False] * G), advantages, seq_adv.cpu(),
                      ref_logp=ref_logp.float().cpu(), old_logp=None if old is None else old[rows].float().cpu(),
                      logp=logp.float().cpu(), entropy=entropy.float().cpu())
        rec = group_record(tok, step, group)
        rec.pop("correct")  # TRL's rewards have no notion of a right answer
        rec["reward_functions"] = per_function
        self.run.samples(rec)
        self.last_sampled_step = step

    def _reference_logps(self, model, batch: Batch) -> torch.Tensor:
        """TRL keeps no reference when beta = 0: score under the base model (LoRA: adapters disabled), or
        the starting model of checkpoints/step_000000, loaded once on the policy's device."""
        if hasattr(model, "disable_adapter"):
            return logprobs.score(logprobs.Scorer(model, chunk_tokens=SCORE_CHUNK_TOKENS), batch,
                                  self.trainer.temperature, disable_adapter=True)[0]
        if self._reference is None:
            start = self.run.path / "checkpoints" / "step_000000"
            device = next(model.parameters()).device
            self._reference = models.load(str(start), 0, device)[0].eval().requires_grad_(False)
        return logprobs.score(logprobs.Scorer(self._reference, chunk_tokens=SCORE_CHUNK_TOKENS), batch,
                              self.trainer.temperature)[0]


def _sharded(trainer) -> bool:
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3


def _model_name(trainer) -> str:
    model = trainer.accelerator.unwrap_model(trainer.model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base.config, "_name_or_path", "") or type(base).__name__)


def _group_rewards(trainer, n_local: int, G: int) -> tuple[list[float], dict[str, list[float | None]]]:
    """The first local group's rewards as TRL summed them (weights × per-function rewards, NaN-aware; an
    unscorable completion counts 0), and each reward function's own values. TRL gathered them over processes
    into `_logs["rewards"]` just before returning; this process's slice starts at process_index × n_local."""
    names = list(trainer.reward_func_names)
    weights = trainer.reward_weights.tolist()
    n_global = n_local * trainer.accelerator.num_processes
    start = trainer.accelerator.process_index * n_local
    per: dict[str, list[float | None]] = {}
    for name in names:
        values = list(trainer._logs["rewards"][name])[-n_global:][start:start + G]
        per[name] = [None if v != v else float(v) for v in values]
    rewards = []
    for i in range(G):
        parts = [w * per[name][i] for name, w in zip(names, weights) if per[name][i] is not None]
        rewards.append(float(sum(parts)) if parts else 0.0)
    return rewards, per


def _question(prompt: Any) -> str:
    """A conversational prompt's last user message, or the prompt text itself."""
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):  # typed content blocks
                    content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
                return str(content)
    return str(prompt) if prompt is not None else ""


def _answer(example: dict) -> str | None:
    for key in ANSWER_COLUMNS:
        if isinstance(example.get(key), str):
            return example[key]
    return None


def _make_callback(att: Attachment):
    base = _transformers_callback_base()

    class GRPOStudioCallback(base):
        """Writes the run directory from the Trainer's events (the main process only)."""

        def on_train_begin(self, args, state, control, **kwargs):
            att.begin(state)

        def on_step_end(self, args, state, control, **kwargs):
            if att.run is not None:
                att.run.update(step=int(state.global_step))

        def on_log(self, args, state, control, logs=None, **kwargs):
            att.metrics(logs or {}, state)

        def on_save(self, args, state, control, **kwargs):
            try:
                att.checkpoint(args, state)
            except OSError as e:
                att.warn("checkpoint", f"cannot make checkpoints/step_{state.global_step:06d}: {e}", once=False)

        def on_train_end(self, args, state, control, **kwargs):
            att.end(state)

    return GRPOStudioCallback()


def _on_signals(att: Attachment):
    """While TRL trains (main thread only): SIGTERM and SIGINT go to the handler that was there before, and
    when that is the default action, which ends the process without unwinding (SIGTERM's), status.json is
    first marked stopped. A Python handler (SIGINT's KeyboardInterrupt) is simply called: the exception ends
    `train` and `Attachment.fail` records it. An ignored signal stays ignored. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    def handler(signum, frame):
        prev = previous.get(signum)
        if callable(prev):
            prev(signum, frame)
            return
        if prev == signal.SIG_IGN:
            return
        with contextlib.suppress(Exception):
            att.killed(signum)
        signal.signal(signum, signal.SIG_DFL)  # SIG_DFL, or a handler set outside Python: the default action
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass

    def restore() -> None:
        for sig, prev in previous.items():
            if signal.getsignal(sig) is handler:
                with contextlib.suppress(ValueError, OSError, TypeError):
                    signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
    return restore


def attach(trainer, run_dir: str | os.PathLike, log_samples_steps: int = 10) -> Attachment:
    """Make `run_dir` a GRPO Studio run directory while `trainer` (a `trl.GRPOTrainer`) trains. Call once,
    before `trainer.train()`. `log_samples_steps`: record a whole group with per-token arrays every N steps
    (and at step 1); 0 never. `run_dir` must not be TRL's `output_dir` (a final `save_model` there would
    overwrite config.json); put it anywhere else, on the same filesystem to hard-link checkpoints."""
    if not hasattr(trainer, "_generate_and_score_completions") or not hasattr(trainer, "add_callback"):
        raise TypeError(f"attach: expected a trl.GRPOTrainer, got {type(trainer).__name__}")
    if not isinstance(log_samples_steps, int) or isinstance(log_samples_steps, bool) or log_samples_steps < 0:
        raise ValueError(f"attach: log_samples_steps must be a whole number ≥ 0, got {log_samples_steps!r}")
    run_dir = Path(run_dir)
    if run_dir.resolve() == Path(trainer.args.output_dir).resolve():
        raise ValueError(f"attach: run_dir {run_dir} is TRL's output_dir; use a separate directory (TRL's "
                         "save_model would overwrite the run's config.json)")
    if getattr(trainer, "_grpo_studio", None) is not None:
        raise ValueError("attach: this trainer already writes a run directory")
    att = Attachment(trainer, run_dir, log_samples_steps)
    trainer._grpo_studio = att
    if not trainer.accelerator.is_main_process:
        return att  # rank 0 alone writes the run directory
    trainer.add_callback(_make_callback(att))

    generate = trainer._generate_and_score_completions

    @functools.wraps(generate)
    def generate_and_record(inputs, *args, **kwargs):
        out = generate(inputs, *args, **kwargs)
        step = att.sample_due()
        if step is not None:
            try:
                att.record_group(step, inputs, out)
            except Exception as e:  # noqa: BLE001 - recording must never stop training
                log.exception("recording a group failed")
                att.warn("samples", f"recording the group of step {step} failed: {type(e).__name__}: {e}")
        return out

    train = trainer.train

    @functools.wraps(train)
    def train_and_record(*args, **kwargs):
        restore = _on_signals(att)
        try:
            return train(*args, **kwargs)
        except BaseException as e:
            with contextlib.suppress(Exception):
                att.fail(e)
            raise
        finally:
            restore()
            att.close()

    trainer._generate_and_score_completions = generate_and_record
    trainer.train = train_and_record
    return att
