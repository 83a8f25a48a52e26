"""The training run: set-up, the SFT warm-up, then GRPO steps (DeepSeekMath Algorithm 1).

One GRPO step reads top to bottom as `_collect` → `_score` → `_update` → `_record`:
  collect  take `questions_per_step` questions from the task and sample G completions each from π_old (the
           current policy), reward them (outcome or process) and compute advantages (context.roll_out)
  score    log-probs under the frozen reference π_ref, and under π_old when μ > 1
  update   μ = `num_iterations` policy updates on the GRPO loss, gradient clipping
  record   metrics / samples, evaluation; then every `ref_reset_steps` π_ref ← π_θ (iterative RL)
The paper's other methods (methods.py) come in through `self.method_run`'s hooks: where the data comes from,
its gradient coefficients, where β goes, a critic's own update. Checkpoints and their ONNX exports are
checkpoint.Saver's; requests between steps (pause, resume, stop, save_checkpoint, and inspection answered in
the very context training runs in) are control.Controls'.
"""

from __future__ import annotations

import copy
import logging
import random
import shutil
import time
from pathlib import Path

import torch

from . import algorithm, checkpoint, components, context, control, distributed, evaluation, groups, inspector, ledger, \
    logprobs, methods, models, onnx_export, protocol, replay, reporters, sftstage
from .config import Config, parse_ks
from .progress import Progress
from .records import MetricsRow
from .rundir import RunDir
from .update import Update, make_optimizer, policy_updates, signal_metrics

log = logging.getLogger("grpo")


EXPORT_WAIT = 300.0  # seconds a finished or stopped run waits for its pending ONNX exports (about 5-15 s each)


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("setting 'device' is cuda but no CUDA device is available")
        return distributed.device_for(torch.device("cuda"))
    return torch.device("cpu")


def frozen_reference(ctx: context.PolicyContext, run_path: Path, step: int, ref_reset_at: int | None,
                     latest: Path | None, seed: int):
    """π_ref as GRPO (re)starts: a frozen copy of the policy, or on resume step_000000's weights, or the
    checkpoint's ref/ after an iterative-RL reset. LoRA keeps none (the base with adapters disabled is it)."""
    if ctx.lora:
        return None
    ref = copy.deepcopy(ctx.policy).eval().requires_grad_(False).to(ctx.dtype)
    saved = saved_reference(run_path, step, ref_reset_at, latest)
    if saved is not None:
        ref.load_state_dict(models.load(str(saved), seed, ctx.device, safetensors_only=True)[0].state_dict())
    return ref


def saved_reference(run_path: Path, step: int, ref_reset_at: int | None, latest: Path | None) -> Path | None:
    """Where a (re)starting run's reference weights are read from; None: the policy as GRPO starts."""
    if ref_reset_at is not None and latest is not None and (latest / "ref").is_dir():
        return latest / "ref"
    if step > 0 and (run_path / "checkpoints" / "step_000000").is_dir():
        return run_path / "checkpoints" / "step_000000"
    return None


def logged_step(cfg: Config, step: int) -> bool:
    """Whether step `step` logs its group to samples.jsonl (and keeps a replay record): every
    `log_samples_steps`, and the first."""
    return bool(cfg.log_samples_steps) and (step % cfg.log_samples_steps == 0 or step == 1)


def step_metrics(group: groups.Group, update: Update, G: int) -> dict[str, float]:
    """A GRPO step's metrics (docs/run-directory.md) but its step, time, evaluation and ledger columns."""
    batch, scored = group.batch, group.scored
    mask = batch.completion_mask.float()
    rewards = torch.tensor(scored.rewards, dtype=torch.float32).view(-1, G)
    kl_tok = algorithm.kl_k3(update.logp, group.ref_logp) if not update.skipped else torch.zeros_like(mask)
    adv = group.advantages
    adv_vals = (adv if adv.dim() == 2 else adv[:, None].expand_as(mask))[mask.bool()].float()
    lens = batch.lengths.float()
    return {
        "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item() if rewards.numel() > 1 else 0.0,
        "accuracy": sum(scored.correct) / len(scored.correct),
        "frac_reward_zero_std": (rewards == rewards[:, :1]).all(1).float().mean().item(),
        "kl": algorithm.masked_mean(kl_tok, mask).item(),
        "clip_ratio/low": update.stats.get("clip_ratio/low", 0.0),
        "clip_ratio/high": update.stats.get("clip_ratio/high", 0.0),
        "clip_ratio/region": update.stats.get("clip_ratio/region", 0.0),
        "entropy": algorithm.masked_mean(update.entropy, mask).item() if update.entropy is not None else 0.0,
        "loss": sum(update.losses) / len(update.losses) if update.losses else float("nan"),
        "grad_norm": sum(update.grad_norms) / len(update.grad_norms) if update.grad_norms else float("nan"),
        "learning_rate": update.learning_rate,
        "completion_length/mean": lens.mean().item(), "completion_length/max": lens.max().item(),
        "truncated_ratio": batch.truncated.float().mean().item(),
        "advantage/mean": adv_vals.mean().item(),
        "advantage/std": adv_vals.std().item() if adv_vals.numel() > 1 else 0.0,
        "advantage/min": adv_vals.min().item(), "advantage/max": adv_vals.max().item(),
        **components.step_metrics(scored.components, scored.metrics),  # rewards/<func>/mean, /std (reward_funcs)
    }


def live_source(ctx: context.PolicyContext, phase: str, step: int, ref_reset_at: int | None,
                run_dir: Path | None = None) -> context.Source:
    """What inspection requests are answered against, in words: the live policy and its reference."""
    if ctx.lora:
        where = "the base model with adapters disabled (LoRA)"
    elif phase != "grpo":
        where = "the policy itself (the reference is fixed when GRPO starts)"
    elif ref_reset_at is None:
        where = "step_000000 (the policy when GRPO started)"
    else:
        where = f"the policy at step {ref_reset_at} (iterative RL)"
    return context.Source(checkpoint=None, step=step, phase=phase, reference=where, run_dir=run_dir)


def report_task_data(run, cfg: Config, task) -> None:
    """Events for what set-up did to the task's data: decontamination, bad rows, long prompts."""
    if task.decontamination is not None:
        run.event("decontamination", 0, **task.decontamination)
    if task.bad_rows:
        why = f": {task.bad_reasons.describe()}" if task.bad_reasons else ""
        run.event("warning", 0, code="bad_rows", count=task.bad_rows,
                  message=f"skipped {task.bad_rows} bad rows in {cfg.task}{why}")
    if task.long_prompts:  # dropped once at set-up (Task.fit_prompts), never re-tokenised while training
        run.event("warning", 0, code="long_prompts", count=task.long_prompts,
                  message=f"dropped {task.long_prompts} rows of {cfg.task} whose prompt is longer than "
                          f"max_prompt_length={cfg.max_prompt_length} tokens")


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, requests: protocol.Requests | None, resume: bool = False,
                 progress: Progress | None = None, method: methods.Method | None = None):
        """Every piece of the trainer's state is named here; `setup` fills it from the settings and the
        checkpoint it resumes from. `method`: a row of the paper's Table 10 (methods.py); GRPO by default,
        whose supervision and reference resets come from the settings."""
        self.cfg, self.run = cfg, run
        self.method = method or methods.GRPO
        self.method_run: methods.MethodRun | None = None  # the method at work (its state and hooks), from GRPO's start
        self.progress = progress or Progress(enabled=False)
        self.resume = resume
        self.device = pick_device(cfg.device)
        # what trains: the policy context (policy, reference, tokenizer, task, prompts, rewarder, engine) and
        # the training forward (chunked log-probs, in DDP under torchrun)
        self.ctx: context.PolicyContext | None = None
        self.scorer = None
        self.sharded = False     # fsdp under torchrun: self.scorer is FSDP2's root (distributed.shard)
        self._ref_root = None    # and the reference's sharded root (full fine-tuning)
        self.opt = self.sched = None
        # where it is
        self.phase = "setup"
        self.step = 0
        self.sft_step = 0
        self.sft_cached = False  # the SFT start came from the cache
        self.ref_reset_at: int | None = None  # step of the last π_ref ← π_θ (None: the reference is step_000000)
        self.last_eval_step: int | None = None
        self._last_eval_fields: dict = {}     # the last eval event's fields (the SFT cache keeps SFT's end's)
        self._last_eval_questions: dict = {}  # and its questions.jsonl row
        self._latest: Path | None = None       # the checkpoint resumed from
        self.state: dict = {}                  # its trainer_state.json
        # random streams (seeded in setup, saved in checkpoints)
        self.data_rng = random.Random(cfg.seed + distributed.seed_offset())
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + distributed.seed_offset())
        # time, control and checkpoints
        self.grpo_t0 = 0.0
        self.elapsed_before = 0.0
        self.nonfinite_in_row = 0
        self.controls = control.Controls(run, requests, self._answer, lambda: self.step)
        self.resume_from: Path | None = None  # the newest intact checkpoint (run_training picks it)
        self.saved_at: tuple[str, int, int] | None = None  # (phase, step, sft_step) of the last checkpoint
        self.saver = checkpoint.Saver(run, cfg)  # saving, pruning, step_* checkpoints' ONNX off this thread
        self._replay_refused = False  # replay records too large for replay_max_gb (warned once)

    # ------------------------------------------------------------------------------------------ set-up
    def setup(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        latest = self.resume_from if self.resume else None
        if self.resume and latest is None:
            log.info("no checkpoint to resume from in %s; starting from scratch", self.run.path)
        # a resumed run's settings come from its config.json (data): its user code is checked as a shared run's
        self.ctx = context.for_training(cfg, self.device, str(latest) if latest is not None else cfg.model,
                                        self.run.path if self.resume else None)
        report_task_data(self.run, cfg, self.ctx.task)
        self.ctx.policy.train()
        scorer = logprobs.Scorer(self.policy, cfg.logprob_chunk_tokens, self.ctx.dtype)
        self.sharded = bool(cfg.fsdp) and distributed.active()
        if self.sharded:
            self._shard(scorer)
        else:
            if cfg.fsdp:  # as accelerate: one process has nothing to shard over; it trains as without the setting
                self.run.event("warning", 0, code="fsdp_single_process",
                               message=f"setting 'fsdp' = {cfg.fsdp} is ignored: one process (launch with torchrun "
                                       "and --nproc_per_node ≥ 2 to shard)")
            self.scorer = distributed.wrap(scorer, self.device)
        self.state = checkpoint.read_state(latest) if latest is not None else {}
        self.phase = self.state.get("phase", "sft")
        self.step = self.state.get("step", 0)
        self.sft_step = self.state.get("sft_step", 0)
        self.ref_reset_at = self.state.get("ref_reset_at")
        self._latest = latest
        if self.resume and distributed.is_main():  # replay records past the checkpoint belong to the replaced steps
            replay.prune(self.run.path, cfg.replay_total_limit, after=self.step)

    def _shard(self, scorer: logprobs.Scorer) -> None:
        """FSDP2 over the training forward and, for full fine-tuning, over a frozen copy of the policy that
        becomes the reference (its weights are set when GRPO starts: `_sharded_reference`)."""
        cfg, dtype = self.cfg, self.ctx.dtype
        if not self.ctx.lora:
            ref = copy.deepcopy(self.policy).eval().requires_grad_(False).to(dtype)
            self._ref_root = distributed.shard(logprobs.Scorer(ref, cfg.logprob_chunk_tokens, dtype), ref, dtype,
                                               cfg.fsdp_offload_params)
        self.scorer = distributed.shard(scorer, self.policy, dtype, cfg.fsdp_offload_params)

    def _sharded_reference(self):
        """π_ref under fsdp: the saved reference's weights (resume), else the policy's shards copied rank by rank."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        ref = self._ref_root.model
        saved = saved_reference(self.run.path, self.step, self.ref_reset_at, self._latest)
        with torch.no_grad():
            if saved is not None:
                full = models.load(str(saved), self.cfg.seed, torch.device("cpu"), safetensors_only=True)[0]
                set_model_state_dict(self._ref_root, {f"model.{k}": v for k, v in full.state_dict().items()},
                                     options=StateDictOptions(full_state_dict=True))
                del full
            else:
                for r, p in zip(ref.parameters(), self.policy.parameters()):
                    r.to_local().copy_(p.to_local())
        return ref

    policy = property(lambda self: self.ctx.policy)
    tokenizer = property(lambda self: self.ctx.tokenizer)

    def _optimizer(self, phase: str, lr: float, total: int, warmup: int, schedule: str) -> None:
        """A fresh optimizer and schedule for `phase`, continued where the resumed checkpoint left it
        (optimizer, scheduler and RNG streams) when it is of that phase."""
        self.opt, self.sched = make_optimizer([p for p in self.policy.parameters() if p.requires_grad], lr,
                                              self.cfg.weight_decay, total, warmup, schedule)
        if self._latest is not None and self.state.get("phase") == phase:
            load = (lambda sd: distributed.load_full_optimizer_state(self.scorer, self.opt, sd)) if self.sharded \
                else None
            why = checkpoint.continue_training(self._latest, self.opt, self.sched, self.data_rng, self.sample_gen,
                                               distributed.rank(), distributed.world(), load)
            if why:
                self.run.event("warning", self.step, code="rng_not_restored",
                               message=f"{why}; continuing without restoring the random streams")

    def _answer(self, msg: dict) -> dict:
        if self.sharded:  # rank 0 alone answers, and the sharded weights need every rank to gather them
            return {"ok": False, "error": f"{msg['type']}: live inspection is not available while training is sharded "
                                          "(setting 'fsdp'); open a checkpoint instead"}
        return inspector.answer(self.ctx, live_source(self.ctx, self.phase, self.step, self.ref_reset_at, self.run.path),
                                msg)

    # ------------------------------------------------------------------------------------------ run
    def train(self) -> str:
        """Run to the end; returns the final state (finished or stopped)."""
        cfg = self.cfg
        self.controls.stop_on_signals()
        self.setup()
        self.run.update(phase=self.phase, step=self.step, sft_step=self.sft_step)
        if self.phase == "sft" and not self._sft():
            return self._finish(protocol.STOPPED)
        self._grpo_setup()
        if self.step == 0 and not (self.run.path / "checkpoints" / "step_000000").exists():
            self._save()
        elif distributed.is_main():
            self.saver.export_missing(self._latest, self.ctx)
        while self.step < cfg.max_steps:
            self.saver.exports.poll()
            self.controls.between_steps()
            if self.controls.stop_requested:
                return self._finish(protocol.STOPPED)
            self._grpo_step()
            if self.run.status.get("state") == protocol.FAILED:
                return protocol.FAILED
            if self.controls.save_requested or (cfg.save_steps and self.step % cfg.save_steps == 0):
                self.controls.save_requested = False
                self._save()
        return self._finish(protocol.FINISHED)

    def _finish(self, state: str) -> str:
        if self.phase == "grpo" and state == protocol.FINISHED and self.last_eval_step != self.step:
            if not self._evaluate(sampled=True):  # stopped during the final evaluation: --resume evaluates
                state = protocol.STOPPED
        if self.saved_at != (self.phase, self.step, self.sft_step):  # not again when save_steps divides max_steps
            self._save()
        self.saver.exports.finish(EXPORT_WAIT)  # the last checkpoint has its ONNX export when the run says it ended
        # The other ranks wait for rank 0's last checkpoint (and its ONNX export) before they leave the process
        # group: rank 1 tearing gloo down while rank 0 was still writing aborted it (SIGABRT) on a loaded machine.
        distributed.barrier()
        self.controls.refuse_deferred()
        self.run.event("phase", self.step, phase="done", state=state)
        self.run.update(state=state, phase="done" if state == protocol.FINISHED else self.phase)
        self.progress.done(state, self.step)
        return state

    def _save(self) -> str:
        self.saved_at = (self.phase, self.step, self.sft_step)
        rng = checkpoint.rng_state(self.data_rng, self.sample_gen)
        gathered = None
        if self.sharded:  # every rank takes part in gathering the whole weights and optimizer state to rank 0
            sd = distributed.full_state_dict(self.scorer)
            osd = distributed.full_optimizer_state(self.scorer, self.opt) if self.opt is not None else None
            own = dict(self.policy.named_parameters())  # a tied weight once, under its first name (as HF saves it)
            tied = {n for n, _ in self.policy.named_parameters(remove_duplicate=False)} - set(own)
            gathered = ({k: v for k, v in ((k.removeprefix("model."), v) for k, v in sd.items()) if k not in tied}
                        if sd is not None else None, osd)
        if distributed.active():
            distributed.check_in_sync(self.policy)
            rng = {"per_rank": distributed.gather(rng)}
            if not distributed.is_main():
                return ""
        ref = self.ctx.reference if (self.phase == "grpo" and self.ref_reset_at is not None) else None
        return self.saver.save(phase=self.phase, step=self.step, sft_step=self.sft_step, ctx=self.ctx,
                               optimizer=self.opt, scheduler=self.sched, rng=rng, ref=ref,
                               trainer_state={"sft_step": self.sft_step, "ref_reset_at": self.ref_reset_at},
                               keep={self._latest.name} if self._latest is not None else set(), gathered=gathered)

    # ------------------------------------------------------------------------------------------ SFT
    def _sft(self) -> bool:
        """The paper's SFT stage (sftstage.py), or its cached end. False if stopped before it ended."""
        if (acc := sftstage.run(self)) is None:
            return False
        self.run.event("phase", 0, phase="grpo", sft_accuracy=acc)
        log.info("SFT done%s: held-out greedy accuracy %.3f", " (cached)" if self.sft_cached else "", acc)
        self.phase = "grpo"
        self.opt = None
        return True

    # ------------------------------------------------------------------------------------------ GRPO
    def _grpo_setup(self) -> None:
        """Fix the reference, start the method, make the GRPO optimizer."""
        cfg = self.cfg
        if cfg.dynamic_sampling and cfg.micro_batch_size and distributed.active():
            # ranks would keep different numbers of groups, hence of micro-batches, and their per-micro-batch
            # collectives would no longer pair up
            raise ValueError("setting 'dynamic_sampling' with 'micro_batch_size' under torchrun is not supported; "
                             "set micro_batch_size=0 or run one process")
        self.phase = "grpo"
        if self.sharded and not self.ctx.lora:
            self.ctx.reference = self._sharded_reference()
        elif not self.ctx.lora:
            self.ctx.reference = frozen_reference(self.ctx, self.run.path, self.step, self.ref_reset_at, self._latest,
                                                  cfg.seed)
        self.method_run = self.method.start(self.ctx, cfg)
        self._optimizer("grpo", cfg.learning_rate, cfg.max_steps, cfg.warmup_steps, cfg.lr_scheduler_type)
        self.grpo_t0 = time.time()
        self.elapsed_before = self.run.read_status().get("grpo_elapsed", 0.0) if self.resume else 0.0
        self.run.update(phase="grpo", step=self.step)

    def _evaluate(self, sampled: bool = False) -> dict[str, float]:
        """Held-out greedy accuracy, with `sampled` also pass@k / maj@k (evaluation.py): an eval event, and
        the metrics-row columns returned. A stop request ends it at the next batch: nothing is recorded
        then and {} is returned. Under fsdp every rank gathers the weights; rank 0 evaluates on them."""
        with distributed.gathered(self.scorer):
            return self._evaluate_gathered(sampled)

    def _evaluate_gathered(self, sampled: bool) -> dict[str, float]:
        cfg = self.cfg
        if not distributed.is_main():  # rank 0 evaluates; the others wait at the next collective
            self.last_eval_step = self.step
            return {"eval/accuracy": float("nan")}
        # its own random stream: evaluating never changes what training samples
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7919)
        try:
            report = self.ctx.evaluate(self.ctx.task.held_out(), samples=cfg.eval_samples if sampled else 0,
                                       ks=parse_ks(cfg.eval_k), temperature=cfg.eval_temperature,
                                       generator=gen, should_stop=self.controls.stop_between_batches)
        except evaluation.Stopped as e:
            log.info("evaluation at step %d stopped (%s); not recorded", self.step, e)
            return {}
        self.last_eval_step = self.step
        self._last_eval_fields = report.fields()
        self._last_eval_questions = {"step": self.step, "source": "eval", "samples": 1,
                                     "questions": [r["question"] for r in self.ctx.task.held_out()],
                                     "passed": [int(c) for c in report.greedy_correct]}
        self.run.questions(self._last_eval_questions)
        self.run.event("eval", self.step, **report.fields())
        self.progress.evaluated(self.step, report.metrics())
        return report.metrics()

    def _grpo_step(self) -> None:
        recorder = self._replay_recorder()
        try:
            t_start = time.time()
            with distributed.gathered(self.scorer):  # fsdp: sampling on the whole weights, gathered once
                group = self._collect()
            t_generate = time.time() - t_start
            with_old = self.cfg.num_iterations > 1 or self.method_run.needs_old_logp
            with distributed.gathered(self.scorer, self._ref_root):
                self.ctx.score_group(group, self.cfg.temperature, with_old)
            self.method_run.coefficients(group, self.step)
            update = self._update(group)
            if update is None:  # too many non-finite steps in a row: the run has failed
                return
            self.step += 1
            self._record(group, update, t_start, t_generate)
            if recorder is not None and not update.skipped:  # the policy's log-probs after the update: replay's check
                self._finish_replay(recorder, group)
                recorder = None
            self._reset_reference()
        finally:
            if recorder is not None:
                recorder.abandon()

    def _replay_recorder(self) -> replay.Recorder | None:
        """At a logged step, what `replay` needs: the state before the update (written now) and, once the step
        is done, its batch (replay.Recorder). One process, GRPO's objective only: a replay re-applies it."""
        cfg, n, m = self.cfg, self.step + 1, self.method
        if not (cfg.replay_total_limit and logged_step(cfg, n) and distributed.world() == 1
                and (m.data, m.gc, m.kl) == ("pi_theta", "grpo", "loss")):
            return None
        size = replay.record_bytes(self.policy)
        if cfg.replay_max_gb and size > cfg.replay_max_gb * 1e9:
            if not self._replay_refused:
                self._replay_refused = True
                self.run.event("warning", self.step, code="replay_record",
                               message=f"no replay records: each would take {size / 1e9:.1f} GB (the trainable "
                                       f"parameters and the optimizer's moments), more than replay_max_gb="
                                       f"{cfg.replay_max_gb}; raise it to keep them")
            return None
        try:
            return replay.Recorder.begin(self.run, n, cfg.replay_total_limit, self.policy, self.opt)
        except OSError as e:  # a full disk or a refused link costs the replay record, not the run
            self.run.event("warning", self.step, code="replay_record", message=f"no replay record for step {n}: {e}")
            return None

    def _finish_replay(self, recorder: replay.Recorder, group: groups.Group) -> None:
        try:
            recorder.finish(self.tokenizer, group, self.ctx.score(group.batch, self.cfg.temperature)[0])
        except OSError as e:
            recorder.abandon()
            self.run.event("warning", self.step, code="replay_record",
                           message=f"no replay record for step {self.step}: {e}")

    def _collect(self) -> groups.Group:
        """Questions → completions from the method's data source (π_old for GRPO) → rewards → advantages."""
        rows, prompt_ids, skipped = self.ctx.questions(self.data_rng, self.cfg.questions_per_step)
        if skipped:
            self.run.event("warning", self.step, code="long_prompts", count=skipped,
                           message=f"skipped {skipped} prompts longer than max_prompt_length")
        group = self.method_run.collect(rows, prompt_ids, self.step, self.sample_gen)
        if self.cfg.dynamic_sampling:
            group = self._dynamic_sampling(group)
        if group.scored.errors:
            errors = group.scored.errors
            self.run.event("warning", self.step, code="reward_error", count=len(errors),
                           message=f"reward function failed on {len(errors)} samples: {errors[0]}")
        group.advantages = group.advantages.to(self.device)
        return group

    def _dynamic_sampling(self, first: groups.Group) -> groups.Group:
        """DAPO's dynamic sampling: groups whose advantages are all zero are dropped and more questions sampled,
        up to `dynamic_sampling_max_rounds` extra rounds, until `questions_per_step` groups carry signal. A step
        still short trains on the groups it has; one that found none trains on its first batch. The dropped
        groups and their tokens are the ledger's `filtered`."""
        cfg, G, want = self.cfg, self.cfg.num_generations, self.cfg.questions_per_step
        kept: list[groups.Group] = []
        have, dropped, dropped_tokens, rounds, batch = 0, 0, 0.0, 0, first
        while True:
            kinds = ledger.group_kinds(batch.advantages, batch.scored.correct, G)
            signal = [q for q, k in enumerate(kinds) if k == "mixed"][: want - have]
            if signal:
                kept.append(groups.select(batch, signal))
            have += len(signal)
            lost = [q for q in range(len(kinds)) if q not in signal]
            dropped += len(lost)
            dropped_tokens += float(sum(batch.batch.completion_mask[q * G:(q + 1) * G].sum() for q in lost))
            if have >= want or rounds >= cfg.dynamic_sampling_max_rounds:
                break
            rows, prompt_ids, _ = self.ctx.questions(self.data_rng, want - have)
            batch = self.method_run.collect(rows, prompt_ids, self.step, self.sample_gen)
            rounds += 1
        if not kept:  # nothing with signal: the first batch's update is its KL term alone
            return first
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        b, rows, texts, scored = groups.concat(kept, pad)
        adv, seq_adv, ends = groups.compute_advantages(self.tokenizer, b, scored, G, cfg.reward, cfg.scale_rewards)
        group = groups.Group(rows, b, texts, scored, adv, seq_adv, ends)
        group.filtered_groups, group.filtered_tokens = dropped, dropped_tokens
        return group

    def _update(self, group: groups.Group) -> Update | None:
        """μ policy updates (update.policy_updates), then the scheduler and the rollout engine's weights. None
        when the run fails on too many non-finite steps in a row."""
        upd = policy_updates(self.scorer, self.policy, self.opt, group, self.cfg,
                                    self.method_run.loss_settings(), lambda: self.method_run.after_update(group))
        if upd.skipped and self._nonfinite():
            return None
        if not upd.skipped:
            self.nonfinite_in_row = 0
        self.sched.step()
        self.ctx.engine.sync(self.policy)
        return upd

    def _nonfinite(self) -> bool:
        """A non-finite loss or gradient: this step's update is skipped (a warning event). True when that
        makes `max_nonfinite_steps` in a row: the run has failed (with a checkpoint)."""
        self.opt.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        self.run.event("warning", self.step, code="nonfinite_loss", count=self.nonfinite_in_row,
                       message=f"non-finite loss or gradient at step {self.step + 1}; update skipped")
        if self.nonfinite_in_row < self.cfg.max_nonfinite_steps:
            return False
        msg = f"{self.nonfinite_in_row} non-finite losses in a row; stopping (lower learning_rate?)"
        self.run.event("error", self.step, message=msg)
        self._save()
        self.run.update(state=protocol.FAILED, error=msg)
        return True

    def _record(self, group: groups.Group, update: Update, t_start: float, t_generate: float) -> None:
        """The step's metrics row, its logged group, evaluation, status and progress."""
        cfg = self.cfg
        elapsed = time.time() - self.grpo_t0 - self.controls.paused_time + self.elapsed_before
        tokens = float(group.batch.completion_mask.sum())
        row: MetricsRow = {"step": self.step, "time": time.time(), "elapsed": elapsed,
                           **step_metrics(group, update, cfg.num_generations),
                           **signal_metrics(group, update, cfg.num_generations, cfg.max_completion_length),
                           "time/generate": t_generate, "time/train": update.seconds,
                           "tokens_per_second": tokens / max(1e-9, time.time() - t_start)}
        if cfg.reward == "process":
            flat = [r for rs in group.scored.step_rewards for r in rs]
            row["process_reward/mean"] = sum(flat) / max(1, len(flat))
        sampled = self.step == cfg.max_steps or bool(cfg.eval_sampled_steps and self.step % cfg.eval_sampled_steps == 0)
        if (cfg.eval_steps and self.step % cfg.eval_steps == 0) or sampled:
            row.update(self._evaluate(sampled))
        row = distributed.reduce_row(row)
        if self.step % cfg.logging_steps == 0 or self.step == cfg.max_steps:
            self.run.metrics(row)
        self.run.questions({"step": self.step, "source": "train", "questions": [r["question"] for r in group.rows],
                            "passed": [sum(group.scored.correct[q * group.G:(q + 1) * group.G])
                                       for q in range(len(group.rows))], "samples": group.G})
        if logged_step(cfg, self.step):
            group.logp, group.entropy = update.logp, update.entropy
            self.run.samples(groups.group_record(self.tokenizer, self.step, group))
        self.run.update(step=self.step, grpo_elapsed=elapsed)
        self.progress.show("grpo", self.step, cfg.max_steps, elapsed, reward=row["reward/mean"],
                           accuracy=row["accuracy"], kl=row["kl"])

    def _reset_reference(self) -> None:
        """Iterative RL: every `ref_reset_steps` the reference becomes the current policy."""
        cfg = self.cfg
        if cfg.ref_reset_steps and self.step % cfg.ref_reset_steps == 0 and self.step < cfg.max_steps:
            self.ctx.reference.load_state_dict(self.policy.state_dict())
            self.ref_reset_at = self.step
            self.run.event("ref_reset", self.step)


def run_training(cfg: Config, run_dir: Path, stream: protocol.Stream, resume: bool, progress: Progress,
                 method: methods.Method | None = None) -> int:
    """Train in `run_dir`; returns the process exit code. Any exception marks the run failed (with its
    checkpoints intact) and is re-raised for the CLI to report."""
    run = distributed.run_dir(run_dir, stream)
    resumed_from, latest, skipped = None, None, []
    if resume:
        latest, skipped = checkpoint.latest_intact(run.path)
        if skipped and latest is None:
            raise checkpoint.CheckpointError(f"--resume: no intact checkpoint in {run.path / 'checkpoints'}; "
                                             + "; ".join(why for _, why in skipped))
        resumed_from = checkpoint.read_state(latest)["step"] if latest else None
    reporters.check(cfg)  # report_to's packages, before the run directory is touched
    run.start(cfg.to_dict(), cfg.max_steps, cfg.sft_steps, resumed_from)
    for ckpt, why in skipped:
        run.event("warning", resumed_from or 0, code="checkpoint_damaged", path=f"checkpoints/{ckpt.name}",
                  message=f"skipped damaged checkpoint {ckpt.name} ({why}); resuming from {latest.name}")
    requests = (protocol.Requests(stream, known=protocol.CONTROL_TYPES + protocol.INSPECT_TYPES)
                if distributed.is_main() else None)
    trainer = Trainer(cfg, run, requests, resume=resume, progress=progress, method=method)
    trainer.resume_from = latest
    for tmp in run.path.glob(f"checkpoints/*/{onnx_export.TMP_DIR}"):  # a killed run's unfinished exports
        if not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        run.reporters = reporters.open_all(cfg, run.path) if distributed.is_main() else []
        state = trainer.train()
    except BaseException as e:  # SystemExit too: whatever ends the process, status.json is not left running
        run.fail(trainer.step, f"{type(e).__name__}: {e}")
        raise
    finally:
        trainer.saver.exports.abandon()  # a failed run's exports end with it (its process may live on: tests, paradigm)
        run.close()
    return 0 if state in (protocol.FINISHED, protocol.STOPPED) else 1
