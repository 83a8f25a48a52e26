"""The paper's §5 unified paradigm (Table 10): every method is one gradient,
E_(q,o)~D [(1/|o|) Σ_t GC(q, o, t) ∇log π_θ(o_t | q, o_<t)], differing only in where the data comes from,
what rewards it and the gradient coefficient. A method is a row of that table, read by the one update loop
(loop.Trainer); the coefficients are pure functions in algorithm.py.

    method            data source                    reward                       GC
    sft               SFT targets of the questions   (human)                      1
    rft               o ~ π_sft (offline, frozen)    rule (outcome)               𝕀(o correct)
    online_rft        o ~ π_θ                        rule (outcome)               𝕀(o correct)
    grpo_outcome      {o_i} ~ π_θ, G per question    rule (outcome)               Â_i + β(π_ref/π_θ − 1)
    grpo_process      {o_i} ~ π_θ                    rule, per step               Â_{i,t} + β(π_ref/π_θ − 1)
    grpo_iterative    {o_i} ~ π_θ                    learned PRM, per step        Â_{i,t} + β(π_ref/π_θ − 1),
                                                     (π_ref ← π_θ and PRM re-trained each iteration)
    ppo               o ~ π_θ                        rule − β log(π_θ/π_ref)/tok  GAE A_t (value model)

Every method sees the same questions (the task's stream under the same seed) and samples the same number of
completions per step (questions_per_step × G); SFT samples none and trains on as many targets instead.

A `Method` is the row; `Method.start` gives the method at work in one run (`MethodRun`): its own state (PPO's
value model, the learned PRM of iterative GRPO, in critic.py) and the hooks the training loop calls in every
step, so the loop itself names no method.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, replace

from .config import Config

log = logging.getLogger("grpo")

DATA = ("sft", "pi_sft", "pi_theta")
REWARDS = ("human", "rule", "rule_steps", "learned_steps")
COEFFICIENTS = ("one", "correct", "grpo", "gae")
KL = ("none", "loss", "reward")


@dataclass(frozen=True)
class Method:
    name: str
    data: str                 # DATA: SFT targets, samples of the frozen SFT model, or of the current policy
    reward: str               # REWARDS
    gc: str                   # COEFFICIENTS: the gradient coefficient
    kl: str = "none"          # KL: where β·KL(π_θ‖π_ref) enters (GRPO: the loss; PPO: the per-token reward)
    iterative: bool = False   # π_ref ← π_θ (and the PRM re-trained) every `iteration_steps`

    def __post_init__(self) -> None:
        for value, allowed in ((self.data, DATA), (self.reward, REWARDS), (self.gc, COEFFICIENTS), (self.kl, KL)):
            if value not in allowed:
                raise ValueError(f"method {self.name}: {value!r} is not one of {allowed}")

    @property
    def supervision(self) -> str:
        return "process" if self.reward in ("rule_steps", "learned_steps") else "outcome"

    @property
    def trained_models(self) -> int:
        """Models with gradients and optimizer state: the policy, PPO's value model, the learned PRM."""
        return 1 + (self.gc == "gae") + (self.reward == "learned_steps")

    def settings(self, cfg: Config, iteration_steps: int) -> Config:
        """The run's settings under this method (what its config.json records): the supervision, and the
        reference reset of iterative RL."""
        return replace(cfg, reward=self.supervision, ref_reset_steps=iteration_steps if self.iterative else 0)

    def start(self, ctx, cfg: Config) -> "MethodRun":
        """This method at work in a run whose policy context (policy, reference, task) is `ctx`."""
        return MethodRun(self, ctx, cfg)


class MethodRun:
    """One method in one run: its state and a step's hooks, called in this order by the loop:
    `collect` (questions → data from the method's source, rewarded) → the loop scores π_ref (and π_old when
    `needs_old_logp`) → `coefficients` (the GC in place of GRPO's advantages) → updates on the loss of
    `loss_settings` → `after_update`."""

    def __init__(self, method: Method, ctx, cfg: Config):
        from . import critic

        if method.data == "pi_sft" and ctx.reference is None:
            raise ValueError(f"method {method.name} samples from the frozen SFT model, which LoRA runs keep no "
                             "copy of (setting 'lora_r')")
        self.method, self.ctx, self.cfg = method, ctx, cfg
        self.value_model = critic.ValueModel(ctx.policy, cfg.learning_rate) if method.gc == "gae" else None
        self.prm = critic.ProcessRewardModel(ctx.policy, seed=cfg.seed) if method.reward == "learned_steps" else None
        self._ppo_targets = None  # (V_old, returns) of this step

    @property
    def needs_old_logp(self) -> bool:
        return self.method.kl == "reward"  # PPO's per-token reward holds log(π_old/π_ref)

    def loss_settings(self) -> Config:
        """The GRPO loss's settings for this method: β in the loss (GRPO), or nowhere / in the reward."""
        return self.cfg if self.method.kl == "loss" else replace(self.cfg, beta=0.0)

    def collect(self, rows: list[dict], prompt_ids: list[list[int]], step: int, generator):
        """G completions of each row from the method's data source, rewarded, with GRPO's advantages."""
        if self.method.data == "sft":
            return self._sft_targets(rows, step)
        model = self.ctx.reference if self.method.data == "pi_sft" else None
        return self.ctx.roll_out(rows, prompt_ids, self.cfg.num_generations, generator, model=model, step=step)

    def _sft_targets(self, rows: list[dict], step: int):
        """SFT-continued's data: G targets per question from the task's SFT mixture; GC = the target's
        per-token SFT weight (1, or the direct style's weight on its first token)."""
        import torch

        from . import algorithm, groups, sft

        ctx, cfg, G = self.ctx, self.cfg, self.cfg.num_generations
        rows_g = [r for r in rows for _ in range(G)]
        rng = random.Random(cfg.seed * 1_000_003 + step)  # not the data stream: the questions stay every method's
        examples = [ctx.task.sft_example(r["question"], rng) for r in rows_g]
        if any(e is None for e in examples):
            raise ValueError(f"method sft: task {cfg.task} has no worked solutions")
        texts = [t for t, _ in examples]
        batch = sft.teacher_batch(ctx.tokenizer, [r["prompt"] for r in rows_g], texts, ctx.device)
        gc = sft.target_weights(torch.tensor([w for _, w in examples]), batch.completion_ids.shape[1],
                                cfg.sft_direct_weighting) * algorithm.sft_coefficients(len(rows_g))[:, None]
        ids = [row[:n] for row, n in zip(batch.completion_ids.tolist(), batch.lengths.tolist())]
        scored = ctx.reward(rows_g, texts, ids, step)
        gc = gc.to(ctx.device) * batch.completion_mask
        return groups.Group(rows, batch, texts, scored, gc, gc[:, 0].clone(), None)

    def coefficients(self, group, step: int) -> None:
        """The method's gradient coefficient in place of GRPO's advantages, in `group`: 𝕀(correct) (RFT), GAE
        with the value model (PPO), or GRPO's process advantages from the learned PRM's step rewards."""
        import torch

        from . import algorithm, groups

        m, cfg, mask, device = self.method, self.cfg, group.batch.completion_mask, self.ctx.device
        if m.gc == "correct":
            group.advantages = group.seq_adv = algorithm.rft_coefficients(group.scored.correct).to(device)
        elif m.gc == "gae":
            values = self.value_model.values(group.batch)
            rewards = algorithm.ppo_token_rewards(torch.tensor(group.scored.rewards, device=device),
                                                  group.old_logp, group.ref_logp, mask, cfg.beta)
            adv, returns = algorithm.gae(rewards, values, mask)
            group.advantages = algorithm.whiten(adv, mask)
            group.seq_adv = group.advantages[:, 0].clone()
            self._ppo_targets = (values, returns)
        elif m.reward == "learned_steps":
            K = cfg.ref_reset_steps
            if step == 0 or (K and step % K == 0):  # a new iteration: re-train on fresh samples
                fit = self.prm.fit(group.batch, group.step_ends, group.scored.step_rewards)
                log.info("step %d: PRM re-trained on fresh samples (BCE %.3f before, %.3f after; ln 2 = 0.693 is "
                         "chance; %d rows replayed)", step, fit["loss_before"], fit["loss"], fit["replayed"])
            steps = self.prm.step_rewards(group.batch, group.step_ends)
            learned = dataclasses.replace(group.scored, step_rewards=steps)
            adv, group.seq_adv, _ = groups.compute_advantages(self.ctx.tokenizer, group.batch, learned,
                                                              cfg.num_generations, "process", cfg.scale_rewards)
            group.advantages, group.scored = adv.to(device), learned

    def after_update(self, group) -> None:
        """After each policy update: PPO's value model takes its own step."""
        if self.value_model is not None:
            self.value_model.update(group.batch, *self._ppo_targets, self.cfg.epsilon)


GRPO = Method("grpo_outcome", data="pi_theta", reward="rule", gc="grpo", kl="loss")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sft", data="sft", reward="human", gc="one"),
    Method("rft", data="pi_sft", reward="rule", gc="correct"),
    Method("online_rft", data="pi_theta", reward="rule", gc="correct"),
    GRPO,
    Method("grpo_process", data="pi_theta", reward="rule_steps", gc="grpo", kl="loss"),
    Method("grpo_iterative", data="pi_theta", reward="learned_steps", gc="grpo", kl="loss", iterative=True),
    Method("ppo", data="pi_theta", reward="rule", gc="gae", kl="reward"),
)}


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; one of {', '.join(METHODS)}") from None
