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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .config import Config

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
