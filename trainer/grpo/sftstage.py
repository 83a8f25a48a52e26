"""The supervised warm-up stage of a training run (the paper's SFT) and its start cache: `run(trainer)` trains
SFT from where the trainer stands (or takes its end from sftcache.py), evaluates the start and returns its
held-out greedy accuracy, or None when a stop request ended it first. It works on the `loop.Trainer` it is
given: its policy context, optimizer, random streams, controls and run directory."""

from __future__ import annotations

import logging
import time

import torch

from . import distributed, protocol, sft, sftcache

log = logging.getLogger("grpo")


def run(t) -> float | None:
    cfg, task = t.cfg, t.ctx.task
    t._optimizer("sft", cfg.sft_learning_rate, cfg.sft_steps, min(50, cfg.sft_steps // 10), "cosine")
    if cfg.sft_steps and not task.has_solutions:
        log.info("SFT needs worked solutions; task %s has none, so the SFT stage is skipped", cfg.task)
    cache = cache_key(t) if t.sft_step == 0 and cfg.sft_steps and task.has_solutions else None
    if t.sft_step == 0:
        t.run.event("phase", 0, phase="sft", steps=cfg.sft_steps)
    if cache is not None:
        start, why = sftcache.lookup(cache[0], t.policy)
        if why is not None:
            log.warning("cached SFT start ignored (%s); training it again", why)
            t.run.event("warning", 0, code="sft_cache_damaged", message=f"cached SFT start ignored: {why}")
        if start is not None:
            return from_cache(t, start)
        t.run.event("sft_cache", 0, action="miss", path=str(sftcache.cache_dir() / "sft" / cache[0]))
    from_zero, t0, loss = t.sft_step == 0, time.time(), None
    t.run.update(phase="sft", sft_step=t.sft_step)
    while t.sft_step < cfg.sft_steps and task.has_solutions:
        t.controls.between_steps()
        if t.controls.stop_requested:
            return None
        loss = step(t)
        if t.sft_step % 10 == 0 or t.sft_step == cfg.sft_steps:
            elapsed = time.time() - t0
            t.run.stream.send(protocol.PROGRESS, phase="sft", step=t.sft_step, total=cfg.sft_steps,
                              loss=loss.item(), elapsed=elapsed)
            t.run.update(sft_step=t.sft_step)
            t.progress.show("sft", t.sft_step, cfg.sft_steps, elapsed, loss=loss.item())
        if t.controls.save_requested or (cfg.sft_save_steps and t.sft_step % cfg.sft_save_steps == 0):
            t.controls.save_requested = False  # a SIGKILL during SFT loses at most sft_save_steps of it
            t._save()
    report = t._evaluate(sampled=True)  # the start: step 0's eval event
    if distributed.any_of(not report)[0]:  # stopped during it: the run stops at SFT's end; --resume evaluates
        return None
    if cache is not None and from_zero and distributed.is_main():
        store(t, cache, report, loss.item() if loss is not None else None, time.time() - t0)
    return report["eval/accuracy"]


def step(t) -> torch.Tensor:
    """One SFT optimizer step on a batch of the task's SFT mixture; returns its loss."""
    cfg, task = t.cfg, t.ctx.task
    rows = task.questions(t.data_rng, cfg.sft_batch_size)
    examples = [task.sft_example(r["question"], t.data_rng) for r in rows]
    batch = sft.teacher_batch(t.tokenizer, [t.ctx.prompt(r["question"]) for r in rows],
                              [target for target, _ in examples], t.device)
    weights = sft.target_weights(torch.tensor([w for _, w in examples]), batch.completion_ids.shape[1],
                                 cfg.sft_direct_weighting)
    loss = sft.sft_loss(t.scorer, batch, weights)
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(t.policy.parameters(), 1.0)
    t.opt.step()
    t.sched.step()
    t.sft_step += 1
    return loss


def cache_key(t) -> tuple[str, dict] | None:
    """(key, what it hashes) of this run's SFT start, or None (with an sft_cache event) when it is not cached:
    the setting is off, several processes train (torchrun), or the task is code."""
    where = sftcache.cache_dir()
    why = ("setting 'sft_cache' is false" if not t.cfg.sft_cache else
           "several processes train (torchrun)" if distributed.active() else "")
    inputs = None
    if not why:
        inputs, why = sftcache.key_inputs(t.cfg, t.device)
    if why:
        log.info("SFT start not cached: %s", why)
        t.run.event("sft_cache", 0, action="off", path=str(where), reason=why)
        return None
    return sftcache.key(inputs), inputs


def store(t, cache: tuple[str, dict], report: dict, loss: float | None, seconds: float) -> None:
    meta = {"eval": t._last_eval_fields, "eval_questions": t._last_eval_questions, "eval_metrics": report, "loss": loss, "sft_seconds": round(seconds, 1)}
    path = sftcache.store_start(cache[0], cache[1], t.policy, t.data_rng, t.sample_gen, meta)
    if path is not None:
        log.info("SFT start stored in the cache: %s", path)
        t.run.event("sft_cache", 0, action="stored", path=str(path))


def from_cache(t, start: sftcache.Start) -> float:
    """SFT's end from the cache: its weights, random streams and end evaluation, recorded as a trained SFT
    records them (progress, the step-0 eval event), so the run reads the same."""
    cfg, meta = t.cfg, start.meta
    sftcache.restore_start(start, t.policy, t.data_rng, t.sample_gen)
    t.ctx.engine.sync(t.policy)
    t.sft_step, t.sft_cached = cfg.sft_steps, True
    log.info("SFT start reused from the cache: %s (trained in %ss when stored)", start.path, meta.get("sft_seconds"))
    t.run.event("sft_cache", 0, action="hit", path=str(start.path))
    if meta.get("loss") is not None:
        t.run.stream.send(protocol.PROGRESS, phase="sft", step=t.sft_step, total=cfg.sft_steps, loss=meta["loss"],
                          elapsed=0.0)
    t.run.update(phase="sft", sft_step=t.sft_step)
    if meta.get("eval_questions"):  # (starts stored before questions.jsonl existed have none)
        t.run.questions(meta["eval_questions"])
    t.run.event("eval", 0, **meta["eval"])
    t.progress.evaluated(0, meta["eval_metrics"])
    t.last_eval_step = 0
    return meta["eval_metrics"]["eval/accuracy"]
