"""The training run: set-up, the SFT warm-up, then GRPO steps (DeepSeekMath Algorithm 1).

One GRPO step, top to bottom:
  1. take `questions_per_step` questions and sample G completions each from π_old (the current policy)
  2. score them (outcome or process rewards) and compute advantages
  3. cache log-probs under π_old (only needed when μ > 1) and under the frozen reference π_ref
  4. μ = `num_iterations` policy updates on the GRPO loss, gradient clipping
  5. log metrics / samples, evaluate, checkpoint, and every `ref_reset_steps` set π_ref ← π_θ
Between steps the loop obeys control requests from stdin (pause, resume, stop, save_checkpoint) and answers
inspection requests (sample_group, score, compare: grpo/inspector.py) with the live policy and reference.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import shutil
import signal
import time
from pathlib import Path

import torch

from . import (algorithm, checkpoint, data, distributed, engines, evaluation, inspector, logprobs, microbatch,
               models, onnx_export, prompts, protocol, sft, verify)
from .config import Config
from .progress import Progress
from .rewards import Rewarder
from .rundir import RunDir
from .tasks import arith

log = logging.getLogger("grpo")


class StopRequested(Exception):
    pass


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("setting 'device' is cuda but no CUDA device is available")
        return distributed.device_for(torch.device("cuda"))
    return torch.device("cpu")


def char_to_token_ends(tokenizer, completion_ids: list[int], char_ends: list[int]) -> list[int]:
    """Map character indices in the decoded completion to the index of the token that holds them."""
    cum, out, total = [], [], 0
    for tid in completion_ids:
        total += len(tokenizer.decode([tid], skip_special_tokens=True))
        cum.append(total)  # characters covered after this token
    for end in char_ends:
        idx = next((i for i, c in enumerate(cum) if c > end), len(cum) - 1)
        out.append(idx)
    return out


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, requests: protocol.Requests | None, resume: bool = False,
                 progress: Progress | None = None):
        self.cfg, self.run, self.requests = cfg, run, requests
        self.progress = progress or Progress(enabled=False)
        self.resume = resume
        self.device = pick_device(cfg.device)
        self.step = 0
        self.sft_step = 0
        self.phase = "setup"
        self.paused_time = 0.0
        self.nonfinite_in_row = 0
        self.stop_requested = False
        self.save_requested = False
        self.ref_reset_at = None  # step of the last π_ref ← π_θ (None: the reference is step_000000)
        self.exporter = onnx_export.Exporter()
        self.onnx_skip: str | None = None if cfg.onnx_export else "onnx_export is off"

    # ------------------------------------------------------------------------------------------ set-up
    def setup(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.data_rng = random.Random(cfg.seed + distributed.seed_offset())
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + distributed.seed_offset())
        self.dataset = data.load(cfg.task, cfg.eval_size, cfg.seed, cfg.question_column, cfg.answer_column,
                                 cfg.answer_format, ops=(cfg.arith_min_ops, cfg.arith_max_ops),
                                 held_out=cfg.held_out, decontaminate_action=cfg.decontaminate)
        self.run.event("decontamination", 0, **self.dataset.decontamination)
        if self.dataset.bad_rows:
            self.run.event("warning", 0, code="bad_rows", count=self.dataset.bad_rows,
                           message=f"skipped {self.dataset.bad_rows} bad rows in {cfg.task}")
        self.check = verify.checker(verify.resolve(cfg.verifier, cfg.task))
        self.rewarder = Rewarder(cfg.task, cfg.reward, cfg.reward_function, verify.resolve(cfg.verifier, cfg.task))

        latest = self.run.latest_checkpoint() if self.resume else None
        if self.resume and latest is None:
            log.info("no checkpoint to resume from in %s; starting from scratch", self.run.path)
        source = str(latest) if latest is not None else cfg.model
        self.policy, self.tokenizer = models.load(source, cfg.seed, self.device, models.Options.from_config(cfg))
        self.policy.train()
        self.lora = models.is_lora(self.policy)
        self.dtype = models.compute_dtype(cfg.dtype, self.device)
        self.prompt_text = prompts.formatter(self.tokenizer, "off" if cfg.model == models.BUILTIN else cfg.chat_template,
                                             cfg.system_prompt)
        self.engine = engines.make(cfg.rollout_engine, self.device, self.dtype,
                                   None if cfg.model == models.BUILTIN else cfg.model)
        # the training forward (log-probs, chunked over the vocabulary), wrapped in DDP under torchrun
        self.scorer = distributed.wrap(logprobs.Scorer(self.policy, cfg.logprob_chunk_tokens, self.dtype), self.device)
        self.state = checkpoint.read_state(latest) if latest is not None else {}
        self.phase = self.state.get("phase", "sft")
        self.step = self.state.get("step", 0)
        self.sft_step = self.state.get("sft_step", 0)
        self.ref_reset_at = self.state.get("ref_reset_at")
        self._latest = latest

    def _restore_training_state(self, phase: str) -> None:
        """Continue `phase` where the resumed checkpoint left it: optimizer, scheduler and RNG streams."""
        if self._latest is None or self.state.get("phase") != phase:
            return
        checkpoint.load_optimizer(self._latest, self.opt, self.sched)
        rng = checkpoint.load_rng(self._latest)
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
        for msg in self.requests.poll():
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
            self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), **inspector.answer(self._target(), msg))
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

    def _target(self) -> inspector.Target:
        """The live policy and reference for inspection requests. Before GRPO starts the reference is not
        fixed yet (it becomes the policy as SFT leaves it), so the policy stands in for it."""
        ref = getattr(self, "ref", None)
        if getattr(self, "lora", False):
            # TODO(issue 5): score the reference with the adapters disabled instead
            where = "the policy itself (LoRA runs: reference inspection is not supported yet)"
        elif ref is None:
            where = "the policy itself (the reference is fixed when GRPO starts)"
        elif self.ref_reset_at is None:
            where = "step_000000 (the policy when GRPO started)"
        else:
            where = f"the policy at step {self.ref_reset_at} (iterative RL)"
        return inspector.Target(policy=self.policy, reference=ref if ref is not None else self.policy,
                                tokenizer=self.tokenizer, settings=self.cfg, step=self.step, checkpoint=None,
                                phase=self.phase, reference_source=where, rewarder=self.rewarder)

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

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
        while self.step < cfg.max_steps:
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
            self._evaluate(sampled=True)
        self._save()
        # The other ranks wait for rank 0's last checkpoint (and its ONNX export) before they leave the process
        # group: rank 1 tearing gloo down while rank 0 was still writing aborted it (SIGABRT) on a loaded machine.
        distributed.barrier()
        self.run.event("phase", self.step, phase="done", state=state)
        self.run.update(state=state, phase="done" if state == protocol.FINISHED else self.phase)
        self.progress.done(state, self.step)
        return state

    def _save(self) -> str:
        rng = checkpoint.rng_state(self.data_rng, self.sample_gen)
        if distributed.active():
            distributed.check_in_sync(self.policy)
            rng = {"per_rank": distributed.gather(rng)}
            if not distributed.is_main():
                return ""
        state = {"sft_step": self.sft_step, "ref_reset_at": self.ref_reset_at}
        ref = self.ref if (self.phase == "grpo" and self.ref_reset_at is not None) else None
        return checkpoint.save(self.run, step=self.step, phase=self.phase, policy=self.policy,
                               tokenizer=self.tokenizer, optimizer=self.opt, scheduler=self.sched, rng=rng,
                               trainer_state=state, ref=ref, before_commit=self._export_onnx)

    def _export_onnx(self, tmp: Path) -> None:
        """onnx/ inside the checkpoint being written (small character-tokenizer models only). A failure is a
        warning event and leaves no onnx/ behind; training goes on."""
        if self.onnx_skip is None:
            n = onnx_export.num_parameters(self.policy)
            if n > onnx_export.MAX_AUTO_PARAMETERS:
                self.onnx_skip = f"{n:,} parameters, over the {onnx_export.MAX_AUTO_PARAMETERS:,} limit"
            elif onnx_export.tokenizer_kind(self.tokenizer) != "char":
                self.onnx_skip = "the tokenizer is not the built-in character tokenizer"
            if self.onnx_skip:
                log.info("no ONNX export beside checkpoints: %s", self.onnx_skip)
        if self.onnx_skip is not None:
            return
        name = tmp.name[: -len(".tmp")]
        ref = getattr(self, "ref", None) if self.phase == "grpo" else None
        t0 = time.time()
        try:
            self.exporter.export(tmp / "onnx", self.policy, ref if ref is not None else self.policy, self.tokenizer,
                                 step=self.step, checkpoint=f"checkpoints/{name}",
                                 max_prompt_length=self.cfg.max_prompt_length, final_dir=tmp.parent / name / "onnx")
        except Exception as e:  # noqa: BLE001 - the export is a convenience; it must never fail training
            shutil.rmtree(tmp / "onnx", ignore_errors=True)
            if isinstance(e, ImportError):
                self.onnx_skip = f"missing package: {e}"
            log.warning("ONNX export beside %s failed: %s: %s", name, type(e).__name__, e)
            self.run.event("warning", self.step, code="onnx_export",
                           message=f"ONNX export beside {name} failed: {type(e).__name__}: {e}")
            return
        log.info("exported %s/onnx in %.1fs", name, time.time() - t0)

    # ------------------------------------------------------------------------------------------ SFT
    def _sft(self) -> bool:
        """The paper's SFT stage on generated worked solutions. False if stopped before it ended."""
        cfg = self.cfg
        self.opt, self.sched = self._make_optimizer(cfg.sft_learning_rate, cfg.sft_steps,
                                                    min(50, cfg.sft_steps // 10), "cosine")
        self._restore_training_state("sft")
        if cfg.sft_steps and not self.dataset.generated:
            log.info("SFT needs worked solutions; task %s has none, so the SFT stage is skipped", cfg.task)
        if self.sft_step == 0:
            self.run.event("phase", 0, phase="sft", steps=cfg.sft_steps)
        self.run.update(phase="sft", sft_step=self.sft_step)
        t0 = time.time()
        while self.sft_step < cfg.sft_steps and self.dataset.generated:
            self._control()
            if self.stop_requested:
                return False
            rows = self.dataset.batch(self.data_rng, cfg.sft_batch_size)
            examples = [arith.sft_example(r["question"], self.data_rng, cfg.sft_direct_fraction,
                                          cfg.sft_direct_weight) for r in rows]
            batch = sft.teacher_batch(self.tokenizer, [sft.prompt_text(r["question"]) for r in rows],
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
        acc = self._evaluate(sampled=True)["eval/accuracy"]  # the start: step 0's eval event
        self.run.event("phase", 0, phase="grpo", sft_accuracy=acc)
        log.info("SFT done: held-out greedy accuracy %.3f", acc)
        self.phase = "grpo"
        self.opt = None
        return True

    # ------------------------------------------------------------------------------------------ GRPO
    def _grpo_setup(self) -> None:
        cfg = self.cfg
        self.phase = "grpo"
        # LoRA: the reference is the base model with adapters disabled (no second copy of the weights)
        self.ref = None if self.lora else copy.deepcopy(self.policy).eval().requires_grad_(False).to(self.dtype)
        ckpts = self.run.path / "checkpoints"
        if self.ref is None:
            pass
        elif self.ref_reset_at is not None and self._latest is not None and (self._latest / "ref").is_dir():
            ref, _ = models.load(str(self._latest / "ref"), cfg.seed, self.device)
            self.ref.load_state_dict(ref.state_dict())
        elif self.step > 0 and (ckpts / "step_000000").is_dir():
            ref, _ = models.load(str(ckpts / "step_000000"), cfg.seed, self.device)
            self.ref.load_state_dict(ref.state_dict())
        self.opt, self.sched = self._make_optimizer(cfg.learning_rate, cfg.max_steps, cfg.warmup_steps,
                                                    cfg.lr_scheduler_type)
        self._restore_training_state("grpo")
        self.grpo_t0 = time.time()
        self.elapsed_before = self.run.read_status().get("grpo_elapsed", 0.0) if self.resume else 0.0
        self.last_eval_step = None
        self.run.update(phase="grpo", step=self.step)

    def _ref_logprobs(self, batch):
        if self.ref is None:
            self.policy.eval()
            out = logprobs.score(logprobs.Scorer(self.policy, self.cfg.logprob_chunk_tokens, self.dtype), batch,
                                 self.cfg.temperature, disable_adapter=True)
            self.policy.train()
            return out
        return logprobs.score(logprobs.Scorer(self.ref, self.cfg.logprob_chunk_tokens, self.dtype), batch,
                              self.cfg.temperature)

    def _evaluate(self, sampled: bool = False) -> dict[str, float]:
        """Held-out greedy accuracy, with `sampled` also pass@k / maj@k (evaluation.py): an eval event, and
        the metrics-row columns returned."""
        cfg = self.cfg
        if not distributed.is_main():  # rank 0 evaluates; the others wait at the next collective
            self.last_eval_step = self.step
            return {"eval/accuracy": float("nan")}
        # its own random stream: evaluating never changes what training samples
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7919)
        report = evaluation.evaluate(self.policy, self.tokenizer, self.dataset.held_out, cfg.max_completion_length,
                                     prompt_fn=self.prompt_text, check=self.check, engine=self.engine,
                                     samples=cfg.eval_samples if sampled else 0,
                                     ks=evaluation.parse_ks(cfg.eval_k), temperature=cfg.eval_temperature,
                                     top_p=cfg.top_p, generator=gen)
        self.last_eval_step = self.step
        self.run.event("eval", self.step, **report.fields())
        self.progress.evaluated(self.step, report.metrics())
        return report.metrics()

    def _grpo_step(self) -> None:
        cfg, tok = self.cfg, self.tokenizer
        G, dev = cfg.num_generations, self.device
        t_start = time.time()

        # 1. questions → G completions each from π_old
        rows, prompt_ids = [], []
        skipped = 0
        while len(rows) < cfg.questions_per_step:
            for r in self.dataset.batch(self.data_rng, cfg.questions_per_step - len(rows)):
                ids = sft.encode(tok, self.prompt_text(r["question"]))
                if len(ids) > cfg.max_prompt_length:
                    skipped += 1
                    if skipped > 100 * cfg.questions_per_step:
                        raise ValueError("setting 'max_prompt_length': every prompt is longer than it")
                    continue
                rows.append({**r, "prompt": self.prompt_text(r["question"])})
                prompt_ids.append(ids)
        if skipped:
            self.run.event("warning", self.step, code="long_prompts", count=skipped,
                           message=f"skipped {skipped} prompts longer than max_prompt_length")
        self.policy.eval()
        batch = self.engine.generate(self.policy, [p for p in prompt_ids for _ in range(G)],
                                     max_new_tokens=cfg.max_completion_length, eos_id=tok.eos_token_id,
                                     pad_id=tok.pad_token_id, temperature=cfg.temperature, top_p=cfg.top_p,
                                     generator=self.sample_gen)
        self.policy.train()
        texts = tok.batch_decode(batch.completion_ids, skip_special_tokens=True)
        questions = [r["question"] for r in rows for _ in range(G)]
        answers = [r["answer"] for r in rows for _ in range(G)]

        # 2. rewards and advantages
        scored = self.rewarder(questions, texts, answers)
        if scored.errors:
            self.run.event("warning", self.step, code="reward_error", count=len(scored.errors),
                           message=f"reward function failed on {len(scored.errors)} samples: {scored.errors[0]}")
        rewards = torch.tensor(scored.rewards, dtype=torch.float32).view(-1, G)
        mask = batch.completion_mask.float()
        advantages, seq_adv, step_ends_tok = compute_advantages(tok, batch, scored, G, cfg.reward, cfg.scale_rewards)
        advantages = advantages.to(dev)
        t_generate = time.time() - t_start

        # 3. π_old and π_ref log-probs (no grad)
        with torch.no_grad():
            ref_logp = microbatch.score_in_parts(lambda b: self._ref_logprobs(b)[0], batch, cfg.micro_batch_size)
            old_logp = None
            if cfg.num_iterations > 1:
                self.policy.eval()
                old_logp = microbatch.score_in_parts(lambda b: logprobs.score(self.scorer, b, cfg.temperature)[0],
                                                     batch, cfg.micro_batch_size)
                self.policy.train()

        # 4. μ policy updates
        t_train0 = time.time()
        losses, grad_norms, stats_acc = [], [], []
        first_logp, entropy = ref_logp, torch.zeros_like(ref_logp)  # what is recorded if no update runs
        lr = self.opt.param_groups[0]["lr"]
        skipped_update = False
        for it in range(cfg.num_iterations):
            # forward + backward, micro-batched (gradients accumulate to the whole batch's)
            out = microbatch.forward_backward(self.scorer, batch, old_logp, ref_logp, advantages, mask, cfg,
                                              with_entropy=(it == 0), zero_grad=self.opt.zero_grad)
            if out is None:
                skipped_update = True
                break
            logp, ent, loss, stats = out
            if it == 0:
                entropy = ent
                first_logp = logp
            gn = torch.nn.utils.clip_grad_norm_(self.policy.parameters(),
                                                cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
            if not torch.isfinite(gn):
                skipped_update = True
                break
            self.opt.step()
            losses.append(loss.item())
            grad_norms.append(gn.item())
            stats_acc.append(stats)
        if skipped_update:
            self.opt.zero_grad(set_to_none=True)
            self.nonfinite_in_row += 1
            self.run.event("warning", self.step, code="nonfinite_loss", count=self.nonfinite_in_row,
                           message=f"non-finite loss or gradient at step {self.step + 1}; update skipped")
            if self.nonfinite_in_row >= cfg.max_nonfinite_steps:
                msg = f"{self.nonfinite_in_row} non-finite losses in a row; stopping (lower learning_rate?)"
                self.run.event("error", self.step, message=msg)
                self._save()
                self.run.update(state=protocol.FAILED, error=msg)
                return
        else:
            self.nonfinite_in_row = 0
        self.sched.step()
        self.engine.sync(self.policy)
        self.step += 1
        t_train = time.time() - t_train0

        # 5. record
        tokens = float(mask.sum())
        stats = {k: sum(s[k].item() for s in stats_acc) / max(1, len(stats_acc)) for k in stats_acc[0]} \
            if stats_acc else {}
        kl_tok = algorithm.kl_k3(first_logp, ref_logp) if not skipped_update else torch.zeros_like(mask)
        adv_tok = (advantages if advantages.dim() == 2 else advantages[:, None].expand_as(mask))
        sel = mask.bool()
        adv_vals = adv_tok[sel].float()
        lens = batch.lengths.float()
        elapsed = time.time() - self.grpo_t0 - self.paused_time + self.elapsed_before
        row = {
            "step": self.step, "time": time.time(), "elapsed": elapsed,
            "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item() if rewards.numel() > 1 else 0.0,
            "accuracy": sum(scored.correct) / len(scored.correct),
            "frac_reward_zero_std": (rewards == rewards[:, :1]).all(1).float().mean().item(),
            "kl": algorithm.masked_mean(kl_tok, mask).item(),
            "clip_ratio/low": stats.get("clip_ratio/low", 0.0), "clip_ratio/high": stats.get("clip_ratio/high", 0.0),
            "clip_ratio/region": stats.get("clip_ratio/region", 0.0),
            "entropy": algorithm.masked_mean(entropy, mask).item() if entropy is not None else 0.0,
            "loss": sum(losses) / len(losses) if losses else float("nan"),
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else float("nan"),
            "learning_rate": lr,
            "completion_length/mean": lens.mean().item(), "completion_length/max": lens.max().item(),
            "truncated_ratio": batch.truncated.float().mean().item(),
            "advantage/mean": adv_vals.mean().item(), "advantage/std": adv_vals.std().item() if adv_vals.numel() > 1 else 0.0,
            "advantage/min": adv_vals.min().item(), "advantage/max": adv_vals.max().item(),
            "time/generate": t_generate, "time/train": t_train,
            "tokens_per_second": tokens / max(1e-9, time.time() - t_start),
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
            self.run.samples(group_record(tok, self.step, rows[0], range(G), batch, texts, scored, seq_adv,
                                          advantages, first_logp, old_logp, ref_logp, entropy, step_ends_tok))
        self.run.update(step=self.step, grpo_elapsed=elapsed)
        self.progress.show("grpo", self.step, cfg.max_steps, elapsed, reward=row["reward/mean"],
                           accuracy=row["accuracy"], kl=row["kl"])

        # iterative RL: the reference becomes the current policy
        if cfg.ref_reset_steps and self.step % cfg.ref_reset_steps == 0 and self.step < cfg.max_steps:
            self.ref.load_state_dict(self.policy.state_dict())
            self.ref_reset_at = self.step
            self.run.event("ref_reset", self.step)


def compute_advantages(tokenizer, batch, scored, G: int, supervision: str, scale_rewards: str):
    """Advantages exactly as training uses them: outcome → one value per completion [N] (group-centred,
    scaled per `scale_rewards`); process → per token [N, T] from the step rewards (token-mapped step ends).
    Returns (advantages, per-completion advantage, step ends in tokens or None)."""
    if supervision != "process":
        rewards = torch.tensor(scored.rewards, dtype=torch.float32).view(-1, G)
        seq_adv = algorithm.scaled_advantages(rewards, scale_rewards).view(-1)
        return seq_adv, seq_adv, None
    lengths = batch.lengths.tolist()
    ids_list = batch.completion_ids.tolist()
    step_ends_tok = [char_to_token_ends(tokenizer, ids[:n], ends)
                     for ids, n, ends in zip(ids_list, lengths, scored.step_ends)]
    per_completion = []
    for g in range(len(lengths) // G):
        sl = slice(g * G, (g + 1) * G)
        per_completion += algorithm.process_advantages(scored.step_rewards[sl], step_ends_tok[sl], lengths[sl],
                                                       scale=scale_rewards != "none")
    advantages = torch.zeros(batch.completion_mask.shape, dtype=torch.float32)
    for i, a in enumerate(per_completion):
        advantages[i, : len(a)] = a
    seq_adv = torch.stack([a[0] if len(a) else torch.tensor(0.0) for a in per_completion])
    return advantages, seq_adv, step_ends_tok


def group_record(tokenizer, step: int, row: dict, idx: range, batch, texts, scored, seq_adv, advantages, logp,
                 old_logp, ref_logp, entropy, step_ends_tok) -> dict:
    """One whole group (completions `idx` of the batch) with per-token arrays: a samples.jsonl record,
    also what `grpo sample` prints and the inspector shows."""
    old = logp if old_logp is None else old_logp
    kl = algorithm.kl_k3(logp, ref_logp)
    adv_tok = advantages if advantages.dim() == 2 else advantages[:, None].expand_as(logp)
    per_token = []
    for i in idx:
        n = int(batch.lengths[i])
        ids = batch.completion_ids[i, :n].tolist()
        r6 = lambda t: [round(float(x), 6) for x in t[i, :n].tolist()]  # noqa: E731
        per_token.append({"text": tokenizer.convert_ids_to_tokens(ids), "logp": r6(logp), "old_logp": r6(old),
                          "ref_logp": r6(ref_logp), "kl": r6(kl), "advantage": r6(adv_tok), "entropy": r6(entropy)})
    rec = {
        "step": step, "question": row["question"], "answer": row["answer"],
        "prompt": row.get("prompt") or sft.prompt_text(row["question"]),
        "completions": [texts[i] for i in idx], "rewards": [scored.rewards[i] for i in idx],
        "correct": [scored.correct[i] for i in idx],
        "advantages": [round(float(seq_adv[i]), 6) for i in idx],
        "truncated": [bool(batch.truncated[i]) for i in idx], "tokens": per_token,
    }
    if scored.step_rewards:
        rec["step_rewards"] = [scored.step_rewards[i] for i in idx]
        rec["step_ends"] = [step_ends_tok[i] for i in idx]
    return rec


def run_training(cfg: Config, run_dir: Path, stream: protocol.Stream, resume: bool, progress: Progress) -> int:
    """Train in `run_dir`; returns the process exit code. Any exception marks the run failed (with its
    checkpoints intact) and is re-raised for the CLI to report."""
    run = distributed.run_dir(run_dir, stream)
    resumed_from = None
    if resume:
        latest = run.latest_checkpoint()
        resumed_from = checkpoint.read_state(latest)["step"] if latest else None
    run.start(cfg.to_dict(), cfg.max_steps, cfg.sft_steps, resumed_from)
    requests = (protocol.Requests(stream, known=protocol.CONTROL_TYPES + protocol.INSPECT_TYPES)
                if distributed.is_main() else None)
    trainer = Trainer(cfg, run, requests, resume=resume, progress=progress)
    try:
        state = trainer.train()
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        run.event("error", trainer.step, message=msg)
        run.update(state=protocol.FAILED, error=msg)
        raise
    finally:
        run.close()
    return 0 if state in (protocol.FINISHED, protocol.STOPPED) else 1
