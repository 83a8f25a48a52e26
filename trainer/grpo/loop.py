"""The training run: set-up, the SFT warm-up, then GRPO steps (DeepSeekMath Algorithm 1).

One GRPO step reads top to bottom as `_collect` → `_score` → `_update` → `_record`:
  collect  take `questions_per_step` questions from the task and sample G completions each from π_old (the
           current policy), reward them (outcome or process) and compute advantages (context.roll_out)
  score    log-probs under the frozen reference π_ref, and under π_old when μ > 1
  update   μ = `num_iterations` policy updates on the GRPO loss, gradient clipping
  record   metrics / samples, evaluation; then every `ref_reset_steps` π_ref ← π_θ (iterative RL)
Between steps the loop obeys control requests from stdin (pause, resume, stop, save_checkpoint) and answers
inspection requests (sample_group, score, compare: grpo/inspector.py) in the very context it trains in.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging
import math
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import algorithm, checkpoint, context, critic, distributed, evaluation, groups, inspector, logprobs, methods, \
    microbatch, models, onnx_export, protocol, rundir, sft, sftcache
from .config import Config, parse_ks
from .progress import Progress
from .records import MetricsRow
from .rundir import RunDir

log = logging.getLogger("grpo")


EXPORT_WAIT = 300.0  # seconds a finished or stopped run waits for its pending ONNX exports (about 5-15 s each)


class StopRequested(Exception):
    pass


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("setting 'device' is cuda but no CUDA device is available")
        return distributed.device_for(torch.device("cuda"))
    return torch.device("cpu")


@dataclass
class Scores:
    """A collected batch's log-probs before any update: π_ref, and π_old when μ > 1."""

    ref_logp: torch.Tensor
    old_logp: torch.Tensor | None


@dataclass
class Update:
    """What the μ policy updates of one step did."""

    logp: torch.Tensor            # π_θ's log-probs in the first update (π_ref's if none ran)
    entropy: torch.Tensor
    losses: list[float]
    grad_norms: list[float]
    stats: dict[str, float]
    learning_rate: float
    skipped: bool                 # a non-finite loss or gradient: no update was applied
    seconds: float


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, requests: protocol.Requests | None, resume: bool = False,
                 progress: Progress | None = None, method: methods.Method | None = None):
        """Every piece of the trainer's state is named here; `setup` fills it from the settings and the
        checkpoint it resumes from. `method`: a row of the paper's Table 10 (methods.py); GRPO by default,
        whose supervision and reference resets come from the settings."""
        self.cfg, self.run, self.requests = cfg, run, requests
        self.method = method or methods.GRPO
        self.value_model: critic.ValueModel | None = None           # PPO's critic
        self.prm: critic.ProcessRewardModel | None = None           # the learned PRM of iterative GRPO
        self.ppo_targets: tuple[torch.Tensor, torch.Tensor] | None = None  # (V_old, returns) of this step
        self.progress = progress or Progress(enabled=False)
        self.resume = resume
        self.device = pick_device(cfg.device)
        # what trains: the policy context (policy, reference, tokenizer, task, prompts, rewarder, engine) and
        # the training forward (chunked log-probs, in DDP under torchrun)
        self.ctx: context.PolicyContext | None = None
        self.scorer = None
        self.opt = self.sched = None
        # where it is
        self.phase = "setup"
        self.step = 0
        self.sft_step = 0
        self.ref_reset_at: int | None = None  # step of the last π_ref ← π_θ (None: the reference is step_000000)
        self.last_eval_step: int | None = None
        self._last_eval_fields: dict = {}     # the last eval event's fields (the SFT cache keeps SFT's end's)
        self._latest: Path | None = None       # the checkpoint resumed from
        self.state: dict = {}                  # its trainer_state.json
        # random streams (seeded in setup, saved in checkpoints)
        self.data_rng = random.Random(cfg.seed + distributed.seed_offset())
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + distributed.seed_offset())
        # time and control
        self.grpo_t0 = 0.0
        self.elapsed_before = 0.0
        self.paused_time = 0.0
        self.nonfinite_in_row = 0
        self.stop_requested = False
        self.save_requested = False
        self._deferred: list[dict] = []       # requests read during an evaluation, obeyed after it
        self.resume_from: Path | None = None  # the newest intact checkpoint (run_training picks it)
        self.saved_at: tuple[str, int, int] | None = None  # (phase, step, sft_step) of the last checkpoint
        self.onnx_skip: str | None = None if cfg.onnx_export else "onnx_export is off"
        self.exports = onnx_export.Background(self._export_failed)  # step_* checkpoints' ONNX, off this thread

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
        if self.ctx.task.decontamination is not None:
            self.run.event("decontamination", 0, **self.ctx.task.decontamination)
        task = self.ctx.task
        if task.bad_rows:
            why = f": {task.bad_reasons.describe()}" if task.bad_reasons else ""
            self.run.event("warning", 0, code="bad_rows", count=task.bad_rows,
                           message=f"skipped {task.bad_rows} bad rows in {cfg.task}{why}")
        if task.long_prompts:  # dropped once at set-up (Task.fit_prompts), never re-tokenised while training
            self.run.event("warning", 0, code="long_prompts", count=task.long_prompts,
                           message=f"dropped {task.long_prompts} rows of {cfg.task} whose prompt is longer than "
                                   f"max_prompt_length={cfg.max_prompt_length} tokens")
        self.ctx.policy.train()
        scorer = logprobs.Scorer(self.policy, cfg.logprob_chunk_tokens, self.ctx.dtype)
        self.scorer = distributed.wrap(scorer, self.device)
        self.state = checkpoint.read_state(latest) if latest is not None else {}
        self.phase = self.state.get("phase", "sft")
        self.step = self.state.get("step", 0)
        self.sft_step = self.state.get("sft_step", 0)
        self.ref_reset_at = self.state.get("ref_reset_at")
        self._latest = latest

    @property
    def policy(self):
        return self.ctx.policy

    @property
    def tokenizer(self):
        return self.ctx.tokenizer

    def _restore_training_state(self, phase: str) -> None:
        """Continue `phase` where the resumed checkpoint left it: optimizer, scheduler and RNG streams."""
        if self._latest is None or self.state.get("phase") != phase:
            return
        checkpoint.load_optimizer(self._latest, self.opt, self.sched)
        try:
            rng = checkpoint.load_rng(self._latest)
        except checkpoint.CheckpointError as e:  # e.g. an rng.pt that would need unpickling: never run it
            self.run.event("warning", self.step, code="rng_not_restored",
                           message=f"{e}; continuing without restoring the random streams")
            rng = None
        if rng and "per_rank" in rng:  # a multi-process run: each rank its own streams
            rng = rng["per_rank"][distributed.rank()] if len(rng["per_rank"]) == distributed.world() else None
        if rng:
            checkpoint.restore_rng(rng, self.data_rng, self.sample_gen)

    def _make_optimizer(self, lr: float, total: int, warmup: int, schedule: str):
        opt = torch.optim.AdamW([p for p in self.policy.parameters() if p.requires_grad], lr=lr, weight_decay=self.cfg.weight_decay,
                                betas=(0.9, 0.99))

        def factor(s: int) -> float:
            if warmup and s < warmup:
                return (s + 1) / warmup
            if schedule == "constant" or total <= warmup:
                return 1.0
            frac = min(1.0, (s - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1.0 - frac

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    # ------------------------------------------------------------------------------------------ control
    def _control(self) -> None:
        """Obey queued requests; while paused, block here (time paused is not counted as training). Under
        torchrun every rank then agrees on stop and save (only rank 0 reads requests)."""
        if self.requests is not None:
            self._obey()
        self.stop_requested, self.save_requested = distributed.any_of(self.stop_requested, self.save_requested)

    def _obey(self) -> None:
        deferred, self._deferred = self._deferred, []
        for msg in deferred + self.requests.poll():
            self._apply(msg)
        while self.run.status.get("state") == protocol.PAUSED and not self.stop_requested:
            t0 = time.time()
            msg = self.requests.wait(timeout=0.5)
            self.paused_time += time.time() - t0
            if msg is not None:
                self._apply(msg)

    def _apply(self, msg: dict) -> None:
        kind = msg["type"]
        if kind in protocol.INSPECT_TYPES:
            self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), **inspector.answer(self.ctx, self._source(), msg))
            return
        if kind == protocol.PAUSE and self.run.status.get("state") == protocol.RUNNING:
            self.run.update(state=protocol.PAUSED)
        elif kind == protocol.RESUME and self.run.status.get("state") == protocol.PAUSED:
            self.run.update(state=protocol.RUNNING)
        elif kind == protocol.STOP:
            self.stop_requested = True
        elif kind == protocol.SAVE_CHECKPOINT:
            self.save_requested = True
        self.run.event("control", self.step, action=kind)
        self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), ok=True, result={"action": kind})

    def _source(self) -> context.Source:
        """What inspection requests are answered against, in words: the live policy and its reference."""
        if self.ctx.lora:
            where = "the base model with adapters disabled (LoRA)"
        elif self.phase != "grpo":
            where = "the policy itself (the reference is fixed when GRPO starts)"
        elif self.ref_reset_at is None:
            where = "step_000000 (the policy when GRPO started)"
        else:
            where = f"the policy at step {self.ref_reset_at} (iterative RL)"
        return context.Source(checkpoint=None, step=self.step, phase=self.phase, reference=where)

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

    def _stop_between_batches(self) -> bool:
        """Asked between evaluation batches: a stop request (stdin, or SIGTERM/SIGINT) ends the evaluation
        there. Other requests wait for the next `_control` (no collective here: rank 0 evaluates alone)."""
        if self.requests is not None and not self.stop_requested:
            for msg in self.requests.poll():
                if msg["type"] == protocol.STOP:
                    self._apply(msg)
                else:
                    self._deferred.append(msg)
        return self.stop_requested

    # ------------------------------------------------------------------------------------------ run
    def train(self) -> str:
        """Run to the end; returns the final state (finished or stopped)."""
        cfg = self.cfg
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self.request_stop)
            except ValueError:  # not the main thread (tests)
                pass
        self.setup()
        self.run.update(phase=self.phase, step=self.step, sft_step=self.sft_step)
        if self.phase == "sft":
            if not self._sft():
                return self._finish(protocol.STOPPED)
        self._grpo_setup()
        if self.step == 0 and not (self.run.path / "checkpoints" / "step_000000").exists():
            self._save()
        elif distributed.is_main():  # resumed: exports a kill cut short (the start's, the newest's) are made again
            for ckpt in {self.run.path / "checkpoints" / "step_000000", self._latest} - {None}:
                if ckpt.name.startswith("step_") and ckpt.is_dir() and not (ckpt / onnx_export.ONNX_DIR).is_dir():
                    self._queue_export(ckpt)
        while self.step < cfg.max_steps:
            self.exports.poll()
            self._control()
            if self.stop_requested:
                return self._finish(protocol.STOPPED)
            self._grpo_step()
            if self.run.status.get("state") == protocol.FAILED:
                return protocol.FAILED
            if self.save_requested or (cfg.save_steps and self.step % cfg.save_steps == 0):
                self.save_requested = False
                self._save()
        return self._finish(protocol.FINISHED)

    def _finish(self, state: str) -> str:
        if self.phase == "grpo" and state == protocol.FINISHED and self.last_eval_step != self.step:
            if not self._evaluate(sampled=True):  # stopped during the final evaluation: --resume evaluates
                state = protocol.STOPPED
        if self.saved_at != (self.phase, self.step, self.sft_step):  # not again when save_steps divides max_steps
            self._save()
        self.exports.finish(EXPORT_WAIT)  # the last checkpoint has its ONNX export when the run says it ended
        # The other ranks wait for rank 0's last checkpoint (and its ONNX export) before they leave the process
        # group: rank 1 tearing gloo down while rank 0 was still writing aborted it (SIGABRT) on a loaded machine.
        distributed.barrier()
        for msg in self._deferred:  # read during a stopped evaluation, never obeyed: still answered
            self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                                 error=f"{msg['type']}: the run stopped before it was obeyed")
        self._deferred = []
        self.run.event("phase", self.step, phase="done", state=state)
        self.run.update(state=state, phase="done" if state == protocol.FINISHED else self.phase)
        self.progress.done(state, self.step)
        return state

    def _save(self) -> str:
        self.saved_at = (self.phase, self.step, self.sft_step)
        rng = checkpoint.rng_state(self.data_rng, self.sample_gen)
        if distributed.active():
            distributed.check_in_sync(self.policy)
            rng = {"per_rank": distributed.gather(rng)}
            if not distributed.is_main():
                return ""
        state = {"sft_step": self.sft_step, "ref_reset_at": self.ref_reset_at}
        # status.json names the checkpoint with the steps it holds: written together when the checkpoint commits
        self.run.status.update(step=self.step, sft_step=self.sft_step)
        ref = self.ctx.reference if (self.phase == "grpo" and self.ref_reset_at is not None) else None
        self.exports.cancel(checkpoint.checkpoint_name(self.step if self.phase != "sft" else self.sft_step, self.phase))
        rel = checkpoint.save(self.run, step=self.step, phase=self.phase, policy=self.policy,
                              tokenizer=self.tokenizer, optimizer=self.opt, scheduler=self.sched, rng=rng,
                              trainer_state=state, ref=ref)
        if self.phase == "grpo":  # only step_* checkpoints are opened by the editor (never sft_*)
            self._queue_export(self.run.path / rel)
        keep = self.exports.busy() | ({self._latest.name} if self._latest is not None else set())
        gone = rundir.prune_checkpoints(self.run.path, self.cfg.save_total_limit, keep)
        if gone:
            log.info("save_total_limit=%d: removed %s", self.cfg.save_total_limit, ", ".join(gone))
        return rel

    def _export_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.run.event("warning", self.step, code="onnx_export", message=message)

    def _queue_export(self, ckpt: Path) -> None:
        """onnx/ beside a step_* checkpoint (models up to MAX_AUTO_PARAMETERS, fast tokenizers), made in the
        background (onnx_export.Background). A failure is a warning event and leaves no onnx/; training goes on."""
        if self.onnx_skip is None:
            n = onnx_export.num_parameters(self.policy)
            if n > onnx_export.MAX_AUTO_PARAMETERS:
                self.onnx_skip = f"{n:,} parameters, over the {onnx_export.MAX_AUTO_PARAMETERS:,} limit"
            elif onnx_export.tokenizer_kind(self.tokenizer) == "slow":
                self.onnx_skip = "the tokenizer is a slow (Python-only) one"
            elif importlib.util.find_spec("onnxscript") is None:
                self.onnx_skip = "the 'onnxscript' package is missing (pip install -r trainer/requirements.txt)"
            if self.onnx_skip:
                log.info("no ONNX export beside checkpoints: %s", self.onnx_skip)
        if self.onnx_skip is None:
            self.exports.submit(ckpt)

    # ------------------------------------------------------------------------------------------ SFT
    def _sft(self) -> bool:
        """The paper's SFT stage on the task's worked solutions. False if stopped before it ended."""
        cfg, task = self.cfg, self.ctx.task
        self.opt, self.sched = self._make_optimizer(cfg.sft_learning_rate, cfg.sft_steps,
                                                    min(50, cfg.sft_steps // 10), "cosine")
        self._restore_training_state("sft")
        if cfg.sft_steps and not task.has_solutions:
            log.info("SFT needs worked solutions; task %s has none, so the SFT stage is skipped", cfg.task)
        cache = self._sft_cache_key() if self.sft_step == 0 and cfg.sft_steps and task.has_solutions else None
        if self.sft_step == 0:
            self.run.event("phase", 0, phase="sft", steps=cfg.sft_steps)
        if cache is not None:
            start, why = sftcache.lookup(cache[0], self.policy)
            if why is not None:
                log.warning("cached SFT start ignored (%s); training it again", why)
                self.run.event("warning", 0, code="sft_cache_damaged", message=f"cached SFT start ignored: {why}")
            if start is not None:
                return self._sft_from_cache(start)
            self.run.event("sft_cache", 0, action="miss", path=str(sftcache.cache_dir() / "sft" / cache[0]))
        from_zero = self.sft_step == 0
        self.run.update(phase="sft", sft_step=self.sft_step)
        t0 = time.time()
        loss = None
        while self.sft_step < cfg.sft_steps and task.has_solutions:
            self._control()
            if self.stop_requested:
                return False
            rows = task.questions(self.data_rng, cfg.sft_batch_size)
            examples = [task.sft_example(r["question"], self.data_rng) for r in rows]
            batch = sft.teacher_batch(self.tokenizer, [self.ctx.prompt(r["question"]) for r in rows],
                                      [target for target, _ in examples], self.device)
            weights = sft.target_weights(torch.tensor([w for _, w in examples]), batch.completion_ids.shape[1],
                                         cfg.sft_direct_weighting)
            loss = sft.sft_loss(self.scorer, batch, weights)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
            self.opt.step()
            self.sched.step()
            self.sft_step += 1
            if self.sft_step % 10 == 0 or self.sft_step == cfg.sft_steps:
                elapsed = time.time() - t0
                self.run.stream.send(protocol.PROGRESS, phase="sft", step=self.sft_step, total=cfg.sft_steps,
                                     loss=loss.item(), elapsed=elapsed)
                self.run.update(sft_step=self.sft_step)
                self.progress.show("sft", self.sft_step, cfg.sft_steps, elapsed, loss=loss.item())
            if self.save_requested or (cfg.sft_save_steps and self.sft_step % cfg.sft_save_steps == 0):
                self.save_requested = False  # a SIGKILL during SFT loses at most sft_save_steps of it
                self._save()
        report = self._evaluate(sampled=True)  # the start: step 0's eval event
        if distributed.any_of(not report)[0]:  # stopped during it: the run stops at SFT's end; --resume evaluates
            return False
        acc = report["eval/accuracy"]
        if cache is not None and from_zero and distributed.is_main():
            self._sft_cache_store(cache, report, loss.item() if loss is not None else None, time.time() - t0)
        self.run.event("phase", 0, phase="grpo", sft_accuracy=acc)
        log.info("SFT done: held-out greedy accuracy %.3f", acc)
        self.phase = "grpo"
        self.opt = None
        return True

    # ------------------------------------------------------------------------------------------ the SFT cache
    def _sft_cache_key(self) -> tuple[str, dict] | None:
        """(key, what it hashes) of this run's SFT start, or None (with an sft_cache event) when it is not
        cached: the setting is off, several processes train (torchrun), or the task is code."""
        where = sftcache.cache_dir()
        why = ("setting 'sft_cache' is false" if not self.cfg.sft_cache else
               "several processes train (torchrun)" if distributed.active() else "")
        inputs = None
        if not why:
            inputs, why = sftcache.key_inputs(self.cfg, self.device)
        if why:
            log.info("SFT start not cached: %s", why)
            self.run.event("sft_cache", 0, action="off", path=str(where), reason=why)
            return None
        return sftcache.key(inputs), inputs

    def _sft_cache_store(self, cache: tuple[str, dict], report: dict, loss: float | None, seconds: float) -> None:
        state = checkpoint.rng_state(self.data_rng, self.sample_gen)  # a checkpoint's random streams, split:
        tensors = {"torch": state["torch"], "sample": state["sample"],  # tensors to safetensors, the rest to JSON
                   **{f"cuda.{i}": t for i, t in enumerate(state.get("cuda", []))}}
        meta = {"data_rng": state["python"], "eval": self._last_eval_fields, "eval_metrics": report, "loss": loss,
                "sft_seconds": round(seconds, 1)}
        path = sftcache.store(cache[0], cache[1], self.policy, tensors, meta)
        if path is not None:
            log.info("SFT start stored in the cache: %s", path)
            self.run.event("sft_cache", 0, action="stored", path=str(path))

    def _sft_from_cache(self, start: sftcache.Start) -> bool:
        """SFT's end from the cache: its weights, random streams and end evaluation, recorded as a trained SFT
        records them (progress, the step-0 eval event, the phase event), so the run reads the same."""
        cfg, meta = self.cfg, start.meta
        with torch.no_grad():
            for name, p in self.policy.named_parameters():
                if p.requires_grad:
                    p.copy_(start.weights[name].to(p.device))
        state = {"python": meta["data_rng"], "torch": start.rng["torch"], "sample": start.rng["sample"]}
        cuda = [start.rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in start.rng]
        if cuda and len(cuda) == torch.cuda.device_count():
            state["cuda"] = cuda
        checkpoint.restore_rng(state, self.data_rng, self.sample_gen)
        self.ctx.engine.sync(self.policy)
        self.sft_step = cfg.sft_steps
        log.info("SFT start reused from the cache: %s (trained in %ss when stored)", start.path, meta.get("sft_seconds"))
        self.run.event("sft_cache", 0, action="hit", path=str(start.path))
        if meta.get("loss") is not None:
            self.run.stream.send(protocol.PROGRESS, phase="sft", step=self.sft_step, total=cfg.sft_steps,
                                 loss=meta["loss"], elapsed=0.0)
        self.run.update(phase="sft", sft_step=self.sft_step)
        self.run.event("eval", 0, **meta["eval"])
        self.progress.evaluated(0, meta["eval_metrics"])
        self.last_eval_step = 0
        acc = meta["eval_metrics"]["eval/accuracy"]
        self.run.event("phase", 0, phase="grpo", sft_accuracy=acc)
        log.info("SFT done (cached): held-out greedy accuracy %.3f", acc)
        self.phase = "grpo"
        self.opt = None
        return True

    # ------------------------------------------------------------------------------------------ GRPO
    def _grpo_setup(self) -> None:
        """Fix the reference, make the GRPO optimizer. LoRA: the reference is the base model with adapters
        disabled (no second copy of the weights); otherwise a frozen copy of the policy as GRPO starts (or,
        on resume, step_000000 or the checkpoint's ref/ after an iterative-RL reset)."""
        cfg = self.cfg
        self.phase = "grpo"
        if not self.ctx.lora:
            ref = copy.deepcopy(self.policy).eval().requires_grad_(False).to(self.ctx.dtype)
            ckpts = self.run.path / "checkpoints"
            saved = None
            if self.ref_reset_at is not None and self._latest is not None and (self._latest / "ref").is_dir():
                saved = self._latest / "ref"
            elif self.step > 0 and (ckpts / "step_000000").is_dir():
                saved = ckpts / "step_000000"
            if saved is not None:
                ref.load_state_dict(models.load(str(saved), cfg.seed, self.device, safetensors_only=True)[0].state_dict())
            self.ctx.reference = ref
        if self.method.data == "pi_sft" and self.ctx.reference is None:
            raise ValueError(f"method {self.method.name} samples from the frozen SFT model, which LoRA runs keep no "
                             "copy of (setting 'lora_r')")
        if self.method.gc == "gae":
            self.value_model = critic.ValueModel(self.policy, cfg.learning_rate)
        if self.method.reward == "learned_steps":
            self.prm = critic.ProcessRewardModel(self.policy, seed=cfg.seed)
        self.opt, self.sched = self._make_optimizer(cfg.learning_rate, cfg.max_steps, cfg.warmup_steps,
                                                    cfg.lr_scheduler_type)
        self._restore_training_state("grpo")
        self.grpo_t0 = time.time()
        self.elapsed_before = self.run.read_status().get("grpo_elapsed", 0.0) if self.resume else 0.0
        self.run.update(phase="grpo", step=self.step)

    def _evaluate(self, sampled: bool = False) -> dict[str, float]:
        """Held-out greedy accuracy, with `sampled` also pass@k / maj@k (evaluation.py): an eval event, and
        the metrics-row columns returned. A stop request ends it at the next batch: nothing is recorded
        then and {} is returned."""
        cfg = self.cfg
        if not distributed.is_main():  # rank 0 evaluates; the others wait at the next collective
            self.last_eval_step = self.step
            return {"eval/accuracy": float("nan")}
        # its own random stream: evaluating never changes what training samples
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7919)
        try:
            report = self.ctx.evaluate(self.ctx.task.held_out(), samples=cfg.eval_samples if sampled else 0,
                                       ks=parse_ks(cfg.eval_k), temperature=cfg.eval_temperature,
                                       generator=gen, should_stop=self._stop_between_batches)
        except evaluation.Stopped as e:
            log.info("evaluation at step %d stopped (%s); not recorded", self.step, e)
            return {}
        self.last_eval_step = self.step
        self._last_eval_fields = report.fields()
        self.run.event("eval", self.step, **report.fields())
        self.progress.evaluated(self.step, report.metrics())
        return report.metrics()

    def _grpo_step(self) -> None:
        t_start = time.time()
        group = self._collect()
        t_generate = time.time() - t_start
        scores = self._score(group)
        self._coefficients(group, scores)
        update = self._update(group, scores)
        if update is None:  # too many non-finite steps in a row: the run has failed
            return
        self.step += 1
        self._record(group, scores, update, t_start, t_generate)
        self._reset_reference()

    def _questions(self) -> tuple[list[dict], list[list[int]]]:
        """`questions_per_step` task rows with their prompts (text and ids). A file's rows were checked once at
        set-up (Task.fit_prompts); a question a task makes as it is drawn that is longer than max_prompt_length
        is skipped here and counted."""
        cfg = self.cfg
        rows, prompt_ids, skipped = [], [], 0
        while len(rows) < cfg.questions_per_step:
            for r in self.ctx.task.questions(self.data_rng, cfg.questions_per_step - len(rows)):
                text = self.ctx.prompt(r["question"])
                ids = sft.encode(self.tokenizer, text)
                if len(ids) > cfg.max_prompt_length:
                    skipped += 1
                    if skipped > 100 * cfg.questions_per_step:
                        raise ValueError("setting 'max_prompt_length': every prompt is longer than it")
                    continue
                rows.append({**r, "prompt": text})
                prompt_ids.append(ids)
        if skipped:
            self.run.event("warning", self.step, code="long_prompts", count=skipped,
                           message=f"skipped {skipped} prompts longer than max_prompt_length")
        return rows, prompt_ids

    def _collect(self) -> context.Group:
        """Questions → G completions each from the method's data source (π_old; the frozen SFT model; the SFT
        targets) → rewards → GRPO's advantages."""
        rows, prompt_ids = self._questions()
        if self.method.data == "sft":
            return self._sft_targets(rows)
        model = self.ctx.reference if self.method.data == "pi_sft" else None
        group = self.ctx.roll_out(rows, prompt_ids, self.cfg.num_generations, self.sample_gen, model=model)
        if group.scored.errors:
            errors = group.scored.errors
            self.run.event("warning", self.step, code="reward_error", count=len(errors),
                           message=f"reward function failed on {len(errors)} samples: {errors[0]}")
        group.advantages = group.advantages.to(self.device)
        return group

    def _sft_targets(self, rows: list[dict]) -> context.Group:
        """SFT-continued's data: G targets per question from the task's SFT mixture; GC = the target's
        per-token SFT weight (1, or the direct style's weight on its first token)."""
        task, G = self.ctx.task, self.cfg.num_generations
        rows = [r for r in rows for _ in range(G)]
        rng = random.Random(self.cfg.seed * 1_000_003 + self.step)  # not data_rng: the questions stay every method's
        examples = [task.sft_example(r["question"], rng) for r in rows]
        if any(e is None for e in examples):
            raise ValueError(f"method sft: task {self.cfg.task} has no worked solutions")
        texts = [t for t, _ in examples]
        batch = sft.teacher_batch(self.tokenizer, [r["prompt"] for r in rows], texts, self.device)
        gc = sft.target_weights(torch.tensor([w for _, w in examples]), batch.completion_ids.shape[1],
                                self.cfg.sft_direct_weighting) * algorithm.sft_coefficients(len(rows))[:, None]
        scored = self.ctx.rewarder([r["question"] for r in rows], texts, [r["answer"] for r in rows])
        gc = gc.to(self.device) * batch.completion_mask
        return context.Group(rows[::G], batch, texts, scored, gc, gc[:, 0].clone(), None)

    def _coefficients(self, group: context.Group, scores: Scores) -> None:
        """The method's gradient coefficient in place of GRPO's advantages: 𝕀(correct) (RFT), GAE with the
        value model (PPO), or GRPO's process advantages from the learned PRM's step rewards."""
        m, cfg, mask = self.method, self.cfg, group.batch.completion_mask
        if m.gc == "correct":
            group.advantages = group.seq_adv = algorithm.rft_coefficients(group.scored.correct).to(self.device)
        elif m.gc == "gae":
            values = self.value_model.values(group.batch)
            rewards = algorithm.ppo_token_rewards(torch.tensor(group.scored.rewards, device=self.device),
                                                  scores.old_logp, scores.ref_logp, mask, cfg.beta)
            adv, returns = algorithm.gae(rewards, values, mask)
            group.advantages = algorithm.whiten(adv, mask)
            group.seq_adv = group.advantages[:, 0].clone()
            self.ppo_targets = (values, returns)
        elif m.reward == "learned_steps":
            K = cfg.ref_reset_steps
            if self.step == 0 or (K and self.step % K == 0):  # a new iteration: re-train on fresh samples
                fit = self.prm.fit(group.batch, group.step_ends, group.scored.step_rewards)
                log.info("step %d: PRM re-trained on fresh samples (BCE %.3f before, %.3f after; ln 2 = 0.693 is "
                         "chance; %d rows replayed)", self.step, fit["loss_before"], fit["loss"], fit["replayed"])
            learned = dataclasses.replace(group.scored, step_rewards=self.prm.step_rewards(group.batch, group.step_ends))
            adv, group.seq_adv, _ = groups.compute_advantages(self.tokenizer, group.batch, learned,
                                                              cfg.num_generations, "process", cfg.scale_rewards)
            group.advantages, group.scored = adv.to(self.device), learned

    def _score(self, group: context.Group) -> Scores:
        """π_ref's log-probs (and π_old's when μ > 1 or the KL is in PPO's reward), no gradients."""
        T = self.cfg.temperature
        needs_old = self.cfg.num_iterations > 1 or self.method.kl == "reward"
        old = self.ctx.score(group.batch, T)[0] if needs_old else None
        return Scores(ref_logp=self.ctx.score(group.batch, T, reference=True)[0], old_logp=old)

    def _update(self, group: context.Group, scores: Scores) -> Update | None:
        """μ policy updates (forward + backward micro-batched; gradients accumulate to the whole batch's).
        None when the run fails on too many non-finite steps in a row."""
        cfg = self.cfg
        t0 = time.time()
        mask = group.batch.completion_mask.float()
        logp, entropy = scores.ref_logp, torch.zeros_like(scores.ref_logp)  # recorded if no update runs
        losses, grad_norms, stats_acc = [], [], []
        lr = self.opt.param_groups[0]["lr"]
        skipped = False
        loss_cfg = cfg if self.method.kl == "loss" else dataclasses.replace(cfg, beta=0.0)  # β elsewhere or nowhere
        for it in range(cfg.num_iterations):
            out = microbatch.forward_backward(self.scorer, group.batch, scores.old_logp, scores.ref_logp,
                                              group.advantages, mask, loss_cfg, with_entropy=(it == 0),
                                              zero_grad=self.opt.zero_grad)
            if out is None:
                skipped = True
                break
            it_logp, ent, loss, stats = out
            if it == 0:
                logp, entropy = it_logp, ent
            gn = torch.nn.utils.clip_grad_norm_(self.policy.parameters(),
                                                cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
            if not torch.isfinite(gn):
                skipped = True
                break
            self.opt.step()
            if self.value_model is not None:
                self.value_model.update(group.batch, *self.ppo_targets, cfg.epsilon)
            losses.append(loss.item())
            grad_norms.append(gn.item())
            stats_acc.append(stats)
        if skipped:
            self.opt.zero_grad(set_to_none=True)
            self.nonfinite_in_row += 1
            self.run.event("warning", self.step, code="nonfinite_loss", count=self.nonfinite_in_row,
                           message=f"non-finite loss or gradient at step {self.step + 1}; update skipped")
            if self.nonfinite_in_row >= cfg.max_nonfinite_steps:
                msg = f"{self.nonfinite_in_row} non-finite losses in a row; stopping (lower learning_rate?)"
                self.run.event("error", self.step, message=msg)
                self._save()
                self.run.update(state=protocol.FAILED, error=msg)
                return None
        else:
            self.nonfinite_in_row = 0
        self.sched.step()
        self.ctx.engine.sync(self.policy)
        stats = {k: sum(s[k].item() for s in stats_acc) / len(stats_acc) for k in stats_acc[0]} if stats_acc else {}
        return Update(logp, entropy, losses, grad_norms, stats, lr, skipped, time.time() - t0)

    def _record(self, group: context.Group, scores: Scores, update: Update, t_start: float,
                t_generate: float) -> None:
        """The step's metrics row, its logged group, evaluation, status and progress."""
        cfg, G, batch, scored = self.cfg, self.cfg.num_generations, group.batch, group.scored
        mask = batch.completion_mask.float()
        rewards = torch.tensor(scored.rewards, dtype=torch.float32).view(-1, G)
        kl_tok = algorithm.kl_k3(update.logp, scores.ref_logp) if not update.skipped else torch.zeros_like(mask)
        adv = group.advantages
        adv_vals = (adv if adv.dim() == 2 else adv[:, None].expand_as(mask))[mask.bool()].float()
        lens = batch.lengths.float()
        elapsed = time.time() - self.grpo_t0 - self.paused_time + self.elapsed_before
        row: MetricsRow = {
            "step": self.step, "time": time.time(), "elapsed": elapsed,
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
            "time/generate": t_generate, "time/train": update.seconds,
            "tokens_per_second": float(mask.sum()) / max(1e-9, time.time() - t_start),
        }
        if cfg.reward == "process":
            flat = [r for rs in scored.step_rewards for r in rs]
            row["process_reward/mean"] = sum(flat) / max(1, len(flat))
        sampled = self.step == cfg.max_steps or bool(cfg.eval_sampled_steps and self.step % cfg.eval_sampled_steps == 0)
        if (cfg.eval_steps and self.step % cfg.eval_steps == 0) or sampled:
            row.update(self._evaluate(sampled))
        row = distributed.reduce_row(row)
        if self.step % cfg.logging_steps == 0 or self.step == cfg.max_steps:
            self.run.metrics(row)
        if cfg.log_samples_steps and (self.step % cfg.log_samples_steps == 0 or self.step == 1):
            self.run.samples(groups.group_record(
                self.tokenizer, self.step, group.rows[0], range(G), batch, group.texts, scored, group.seq_adv,
                group.advantages, update.logp, scores.old_logp, scores.ref_logp, update.entropy, group.step_ends))
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
        state = trainer.train()
    except BaseException as e:  # SystemExit too: whatever ends the process, status.json is not left running
        run.fail(trainer.step, f"{type(e).__name__}: {e}")
        raise
    finally:
        trainer.exports.abandon()  # a failed run's exports end with it (its process may live on: tests, paradigm)
        run.close()
    return 0 if state in (protocol.FINISHED, protocol.STOPPED) else 1
