"""Replay a logged step: re-apply GRPO step N from the state before it, under the run's own settings and under
alternative objectives, and measure what each update does to every token (Δ log π).

What the trainer keeps (`Recorder`, at each logged step — log_samples_steps — while `replay_total_limit` > 0):

    replay/step_000010/
      state.safetensors   the trainable parameters before step 10 (all of them; LoRA: the adapters)
      optimizer.pt        the optimizer's state before it (AdamW's moments and step counts; weights_only-loadable)
      batch.safetensors   the step's batch: prompt and completion ids and masks, truncation, π_ref's (and π_old's)
                          log-probs, the advantages trained with, and `logp_after`: the policy's log-probs of the
                          batch after the step's update
      meta.json           questions, prompts, completion texts, rewards, step rewards, dynamic sampling's counts
      checksums.json      written last: an intact record is one whose files match it

`replay` loads the run's start checkpoint (step_000000: the architecture, and for LoRA the base), the state
before step N over it, and applies `update.policy_updates` — the trainer's own update — to the logged batch,
once per variant, each from the same state. Under the run's own settings the result must equal `logp_after`
(`reproduced`); the settings a variant may change are those of the objective (REPLAYABLE). A run directory is
untrusted data: its record is checked against its checksums, tensors are read from safetensors and optimizer.pt
with torch.load(weights_only=True) only, and no user code is imported (the rewards are logged).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import checkpoint, groups, logprobs, models
from .config import Config, ConfigError, build_config
from .context import score_batch
from .records import LEDGER_METRICS, ReplayResult
from .rewards import Scored
from .rollout import Batch
from .rundir import CHECKPOINTS, START, RunDir, read_json_file, refuse_link
from .update import make_optimizer, policy_updates, signal_metrics

log = logging.getLogger("grpo")

FOLDER = "replay"
FORMAT = 1
MAX_VARIANTS = 8
# the objective's settings: what a replay of the same batch from the same state can change
REPLAYABLE = ("loss_type", "scale_rewards", "importance_sampling_level", "epsilon", "epsilon_high",
              "mask_truncated_completions", "top_entropy_quantile", "beta", "num_iterations", "max_grad_norm",
              "learning_rate", "micro_batch_size", "logprob_chunk_tokens")
ADVANTAGE_SETTINGS = ("scale_rewards",)  # a variant changing these recomputes the advantages from the rewards
_BATCH = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated")


class ReplayError(ValueError):
    """A step that cannot be replayed, or a variant that cannot be applied; the message says why."""


def record_name(step: int) -> str:
    return f"step_{step:06d}"


def records(run_dir: Path) -> list[int]:
    """The steps of the run with a complete replay record, oldest first."""
    root = Path(run_dir) / FOLDER
    if not root.is_dir() or root.is_symlink():
        return []
    steps = []
    for d in root.iterdir():
        if d.name.startswith("step_") and d.name[5:].isdigit() and d.is_dir() and not d.is_symlink() \
                and (d / checkpoint.CHECKSUMS).is_file():  # written last: the record is complete
            steps.append(int(d.name[5:]))
    return sorted(steps)


def trainable(policy: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in policy.named_parameters() if p.requires_grad}


def record_bytes(policy: torch.nn.Module) -> int:
    """A record's size, roughly: the trainable parameters and AdamW's two moments (the batch is small)."""
    return 3 * sum(p.numel() * p.element_size() for p in trainable(policy).values())


# ------------------------------------------------------------------------------------------- recording
class Recorder:
    """A replay record being written by the trainer: `begin` before step N's update (its state), `finish` after
    it (its batch and the policy's log-probs after the update), then renamed into place and pruned."""

    def __init__(self, run: RunDir, step: int, limit: int):
        self.run, self.step, self.limit = run, step, limit
        self.tmp = run.staging(FOLDER, record_name(step))

    @classmethod
    def begin(cls, run: RunDir, step: int, limit: int, policy: torch.nn.Module, opt) -> Recorder:
        rec = cls(run, step, limit)
        save_file({n: p.detach().cpu().clone().contiguous() for n, p in trainable(policy).items()},
                  str(rec.tmp / "state.safetensors"))
        torch.save({"optimizer": opt.state_dict(), "scheduler": None}, rec.tmp / "optimizer.pt")
        return rec

    def finish(self, tokenizer, group: groups.Group, logp_after: torch.Tensor) -> None:
        b = group.batch
        tensors = {"prompt_ids": b.prompt_ids, "prompt_mask": b.prompt_mask, "completion_ids": b.completion_ids,
                   "completion_mask": b.completion_mask, "truncated": b.truncated, "ref_logp": group.ref_logp,
                   "advantages": group.advantages, "seq_adv": group.seq_adv, "logp_after": logp_after}
        if group.old_logp is not None:
            tensors["old_logp"] = group.old_logp
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, str(self.tmp / "batch.safetensors"))
        s = group.scored
        meta = {"format": FORMAT, "step": self.step, "G": group.G, "rows": group.rows, "texts": group.texts,
                "rewards": s.rewards, "correct": s.correct, "step_rewards": s.step_rewards, "step_ends": s.step_ends,
                "token_step_ends": group.step_ends, "filtered_groups": group.filtered_groups,
                "filtered_tokens": group.filtered_tokens}
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        checkpoint.write_checksums(self.tmp)
        self.run.commit_staged(self.tmp)
        prune(self.run.path, self.limit)

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def prune(run_dir: Path, limit: int, after: int | None = None) -> None:
    """Keep the newest `limit` records (and, on resume, none of a step after `after`: that trajectory is
    replaced by the one about to be trained)."""
    steps = records(run_dir)
    drop = [s for s in steps if after is not None and s > after]
    kept = [s for s in steps if s not in drop]
    drop += kept[: max(0, len(kept) - limit)]
    for s in drop:
        shutil.rmtree(Path(run_dir) / FOLDER / record_name(s), ignore_errors=True)


# ------------------------------------------------------------------------------------------- replaying
def variant_settings(base: Config, change: dict[str, Any]) -> Config:
    """`base` with the objective settings `change` names, each checked as `--set` checks it."""
    if not isinstance(change, dict):
        raise ReplayError(f"a variant is an object of settings, got {change!r}")
    for key in change:
        if key not in REPLAYABLE:
            raise ReplayError(f"setting {key!r} cannot be replayed: a replay re-applies the logged batch from the "
                              f"same state, so only the objective may change ({', '.join(REPLAYABLE)})")
    try:
        return build_config({**base.to_dict(), **change})
    except ConfigError as e:
        raise ReplayError(str(e)) from None


def variant_name(change: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in change.items()) or "run"


def _run_settings(run_dir: Path) -> Config:
    """The run's own settings, exactly (config.json): a replay under defaults would not be the run's step."""
    try:
        base = read_json_file(run_dir / "config.json")
        known = set(Config.__dataclass_fields__)
        return build_config({k: v for k, v in base.items() if k in known})
    except (OSError, ValueError) as e:
        raise ReplayError(f"{run_dir / 'config.json'}: cannot be read as the run's settings: {e}") from None


def _load_record(run_dir: Path, step: int) -> tuple[Path, dict, dict[str, torch.Tensor]]:
    root = refuse_link(run_dir / FOLDER)
    d = root / record_name(step)
    if not d.is_dir():
        have = records(run_dir)
        which = ", ".join(map(str, have)) if have else "none (it keeps them at log_samples_steps while " \
                                                      "replay_total_limit > 0)"
        raise ReplayError(f"step {step} has no replay record in {run_dir}; replayable steps: {which}")
    why = checkpoint.problem(d)
    if why is not None or not (d / checkpoint.CHECKSUMS).is_file():
        raise ReplayError(f"replay record {d.name} is damaged: {why or 'no checksums.json'}")
    meta = read_json_file(d / "meta.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("step") != step:
        raise ReplayError(f"{d / 'meta.json'}: not a replay record of step {step} (format {FORMAT})")
    return d, meta, load_file(str(d / "batch.safetensors"))


class Replayer:
    """The policy before step N, loaded once, and the logged batch: `run(change)` applies the step's update under
    the run's settings changed by `change`, from that same state every time."""

    def __init__(self, run_dir: str | Path, step: int, device: torch.device | None = None):
        self.run_dir, self.step = Path(run_dir), step
        self.settings = _run_settings(self.run_dir)
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dir, self.meta, t = _load_record(self.run_dir, step)
        start = self.run_dir / CHECKPOINTS / START
        checkpoint.check(start)
        self.policy, self.tokenizer = models.load(str(start), self.settings.seed, self.device,
                                                  models.Options.from_config(self.settings), safetensors_only=True)
        self.policy.train()
        self.dtype = models.compute_dtype(self.settings.dtype, self.device)
        self.params = trainable(self.policy)
        before = load_file(str(self.dir / "state.safetensors"))
        if set(before) != set(self.params):
            missing = sorted(set(self.params) ^ set(before))[:3]
            raise ReplayError(f"{self.dir / 'state.safetensors'}: its parameters do not match the run's model "
                              f"(e.g. {', '.join(missing)})")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(before[name].to(p.dtype))
        self.before = {n: p.detach().clone() for n, p in self.params.items()}
        d = self.device
        self.batch = Batch(*(t[k].to(d) for k in _BATCH))
        m = self.meta
        self.scored = Scored(list(m["rewards"]), list(m["correct"]), list(m["step_rewards"]), list(m["step_ends"]), [])
        self.logged = {k: t[k].to(d) for k in ("ref_logp", "advantages", "seq_adv", "logp_after")}
        self.logged_old = t["old_logp"].to(d) if "old_logp" in t else None
        self.logp_before = self._score()

    def _score(self) -> torch.Tensor:
        s = self.settings
        return score_batch(self.policy, self.batch, s.temperature, self.dtype, s.logprob_chunk_tokens,
                           s.micro_batch_size)[0]

    def _group(self, cfg: Config) -> groups.Group:
        m, G = self.meta, int(self.meta["G"])
        if any(getattr(cfg, k) != getattr(self.settings, k) for k in ADVANTAGE_SETTINGS):
            adv, seq_adv, _ = groups.compute_advantages(self.tokenizer, self.batch, self.scored, G, cfg.reward,
                                                        cfg.scale_rewards)
            adv, seq_adv = adv.to(self.device), seq_adv.to(self.device)
        else:
            adv, seq_adv = self.logged["advantages"], self.logged["seq_adv"]
        old = self.logged_old
        if old is None and cfg.num_iterations > 1:  # π_old is the policy before the update: as the trainer scores it
            old = self.logp_before
        group = groups.Group(m["rows"], self.batch, m["texts"], self.scored, adv, seq_adv, m["token_step_ends"],
                             ref_logp=self.logged["ref_logp"], old_logp=old)
        group.filtered_groups, group.filtered_tokens = m["filtered_groups"], m["filtered_tokens"]
        return group

    def run(self, change: dict[str, Any]) -> dict[str, Any]:
        cfg = variant_settings(self.settings, change)
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.before[name])
        opt, sched = make_optimizer(list(self.params.values()), cfg.learning_rate, cfg.weight_decay, cfg.max_steps,
                                    cfg.warmup_steps, cfg.lr_scheduler_type)
        checkpoint.load_optimizer(self.dir, opt, None)  # its param groups carry the step's scheduled lr
        if cfg.learning_rate != self.settings.learning_rate:
            for g in opt.param_groups:
                g["lr"] *= cfg.learning_rate / self.settings.learning_rate
        group = self._group(cfg)
        scorer = logprobs.Scorer(self.policy, cfg.logprob_chunk_tokens, self.dtype)  # the training forward
        upd = policy_updates(scorer, self.policy, opt, group, cfg, cfg)
        if upd.skipped:
            raise ReplayError(f"{variant_name(change)}: the loss or gradient is not finite; no update applied")
        after = self._score()
        mask = self.batch.completion_mask.bool()
        delta = torch.where(mask, after - self.logp_before, torch.zeros_like(after)).float()
        lengths = self.batch.lengths.tolist()
        ledger = {k: float(v) for k, v in signal_metrics(group, upd, int(self.meta["G"]), cfg.max_completion_length
                                                         ).items() if k in LEDGER_METRICS}
        out = {"name": variant_name(change), "settings": dict(change),
               "loss": sum(upd.losses) / len(upd.losses), "grad_norm": sum(upd.grad_norms) / len(upd.grad_norms),
               "delta_logp": [[_sig(x) for x in delta[i, :n].tolist()] for i, n in enumerate(lengths)],
               "delta_seq": [_sig(float(delta[i].sum())) for i in range(len(lengths))], "ledger": ledger}
        if not change:
            err = (after - self.logged["logp_after"]).abs()[mask]
            out["reproduced"] = float(err.max()) if err.numel() else 0.0
        return out

    def completions(self) -> list[dict[str, Any]]:
        G, out = int(self.meta["G"]), []
        ids = self.batch.completion_ids.tolist()
        for i, n in enumerate(self.batch.lengths.tolist()):
            out.append({"group": i // G, "text": self.meta["texts"][i],
                        "tokens": self.tokenizer.convert_ids_to_tokens(ids[i][:n]),
                        "reward": float(self.scored.rewards[i]), "advantage": _sig(float(self.logged["seq_adv"][i])),
                        "truncated": bool(self.batch.truncated[i])})
        return out


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def replay(run_dir: str | Path, step: int, variants: list[dict[str, Any]] | None = None,
           device: torch.device | None = None) -> ReplayResult:
    """Step `step` of the run in `run_dir` replayed under its own settings, then under each of `variants` (the
    settings each changes): ReplayResult (records.py)."""
    t0 = time.time()
    variants = list(variants or [])
    if len(variants) > MAX_VARIANTS:
        raise ReplayError(f"at most {MAX_VARIANTS} variants per replay, got {len(variants)}")
    with torch.random.fork_rng(devices=[]):  # loading (LoRA's initialisation) leaves a live trainer's RNG alone
        r = Replayer(run_dir, step, device)
    for change in variants:  # every variant is checked before the first update runs
        variant_settings(r.settings, change)
    results = [r.run({})] + [r.run(change) for change in variants if change]
    return {"step": step, "run_dir": str(Path(run_dir).resolve()),
            "questions": [row["question"] for row in r.meta["rows"]], "completions": r.completions(),
            "variants": results, "seconds": round(time.time() - t0, 3)}


def describe(result: ReplayResult, top: int = 5) -> str:
    """The replay in words: each variant's loss and gradient norm, and the tokens its update moved most."""
    comps = result["completions"]
    lines = [f"step {result['step']}: {len(comps)} completions of {len(result['questions'])} questions, "
             f"{len(result['variants'])} variants in {result['seconds']:.1f} s"]
    for v in result["variants"]:
        head = f"  {v['name']}: loss {v['loss']:+.5f}, grad norm {v['grad_norm']:.4f}"
        if "reproduced" in v:
            head += f", reproduces the logged step to {v['reproduced']:.1e}"
        lines.append(head)
        moved = sorted(((abs(d), d, i, t) for i, ds in enumerate(v["delta_logp"]) for t, d in enumerate(ds)),
                       reverse=True)[:top]
        for _, d, i, t in moved:
            lines.append(f"    {d:+.4f}  completion {i} (advantage {comps[i]['advantage']:+.2f}) token {t} "
                         f"{comps[i]['tokens'][t]!r}")
    return "\n".join(lines)


def settings_of(text: list[str]) -> dict[str, Any]:
    """`--set key=value` strings (one variant) as its settings, values parsed as `train --set` parses them."""
    change: dict[str, Any] = {}
    for item in text:
        key, sep, value = item.partition("=")
        if not sep:
            raise ReplayError(f"--set expects key=value, got {item!r}")
        try:
            change[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            change[key.strip()] = value
    return change

