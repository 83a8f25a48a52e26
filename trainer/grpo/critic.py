"""Models that output a number per token instead of a next-token distribution: PPO's value model and the
learned process reward model of iterative GRPO (the paper's §4.1.4 and §5 baselines).

Both are a copy of the policy's transformer with a linear head, as the paper's value and reward models are
initialised from the SFT model. `ScalarModel.forward` gives one value per completion token: the head on the
hidden state after reading that token (for the PRM: the step's last token; for PPO's V_t the state the
token was produced from is the previous one, so values are shifted by one position).
"""

from __future__ import annotations

import contextlib
import copy
import random

import torch
import torch.nn.functional as F

from . import algorithm, logprobs
from .rollout import Batch, positions


class ScalarModel(torch.nn.Module):
    def __init__(self, policy):
        super().__init__()
        lm = logprobs._causal_lm(policy)
        self.body = copy.deepcopy(lm.get_decoder()).train().requires_grad_(True)
        self.head = torch.nn.Linear(lm.config.hidden_size, 1).to(next(self.body.parameters()).dtype)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, batch: Batch, shift: bool = False) -> torch.Tensor:
        """[N, C]: a value per completion token, from the hidden state after token t (or, `shift`, before it)."""
        mask = batch.attention_mask
        hidden = self.body(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions(mask),
                           use_cache=False).last_hidden_state
        p, c = batch.prompt_ids.shape[1], batch.completion_ids.shape[1]
        rows = hidden[:, p - 1: p - 1 + c] if shift else hidden[:, p: p + c]
        return self.head(rows).squeeze(-1).float()


class ValueModel:
    """PPO's critic V_ψ: trained on the GAE returns with the clipped value loss, its own AdamW."""

    def __init__(self, policy, lr: float):
        self.model = ScalarModel(policy).to(next(policy.parameters()).device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.99))

    @torch.no_grad()
    def values(self, batch: Batch) -> torch.Tensor:
        return self.model(batch, shift=True) * batch.completion_mask.float()

    def update(self, batch: Batch, old_values: torch.Tensor, returns: torch.Tensor, clip: float) -> float:
        loss = algorithm.value_loss(self.model(batch, shift=True), old_values, returns, batch.completion_mask, clip)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return loss.item()


class ProcessRewardModel:
    """A learned PRM: P(step correct) at each step's last token, trained with binary cross-entropy on the
    labels of the task's step checker. Each `fit` trains on fresh samples plus a replay of 10% of its
    earlier data (DeepSeekMath §4.1.4 / Algorithm 1), for `epochs` passes in shuffled minibatches: a reward
    model is fitted, not nudged (a few full-batch steps at the policy's learning rate leave it at chance,
    BCE ≈ ln 2, and its near-constant rewards, normalised by their group's tiny spread, are pure noise)."""

    LR = 1e-3

    def __init__(self, policy, lr: float = LR, replay: float = 0.1, epochs: int = 8, batch_size: int = 32,
                 seed: int = 0):
        self.model = ScalarModel(policy).to(next(policy.parameters()).device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.99))
        self.replay, self.epochs, self.batch_size = replay, epochs, batch_size
        self.history: list[tuple[Batch, list[list[int]], list[list[float]]]] = []
        self.rng = random.Random(seed)

    def _loss(self, batch: Batch, ends: list[list[int]], labels: list[list[float]]) -> torch.Tensor:
        scores = self.model(batch)
        idx = [(i, e) for i, es in enumerate(ends) for e in es]
        target = torch.tensor([float(x > 0) for ls in labels for x in ls], device=scores.device)
        if not idx:
            return scores.sum() * 0
        picked = scores[torch.tensor([i for i, _ in idx]), torch.tensor([e for _, e in idx])]
        return F.binary_cross_entropy_with_logits(picked, target)

    @contextlib.contextmanager
    def _judging(self):
        """Eval mode without gradients, the previous mode restored: how the PRM scores."""
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was)

    @staticmethod
    def _rows(part: tuple[Batch, list[list[int]], list[list[float]]], rows: list[int]):
        b, e, lab = part
        idx = torch.tensor(rows, device=b.completion_ids.device)
        return (Batch(b.prompt_ids[idx], b.prompt_mask[idx], b.completion_ids[idx], b.completion_mask[idx],
                      b.truncated[idx]), [e[i] for i in rows], [lab[i] for i in rows])

    def fit(self, batch: Batch, ends: list[list[int]], labels: list[list[float]]) -> dict[str, float]:
        """Train on this batch (token step ends and checker labels) and 10% of the rows seen before. Returns
        the loss on the fresh rows before training (how well the PRM so far judges the current policy's
        steps: ln 2 ≈ 0.693 is chance) and after, and the number of rows replayed."""
        with self._judging():
            before = self._loss(batch, ends, labels).item()
        old = [(h, i) for h in range(len(self.history)) for i in range(len(self.history[h][1]))]
        replayed = self.rng.sample(old, int(round(self.replay * len(old))))
        self.history.append((batch, ends, labels))
        data = [(len(self.history) - 1, i) for i in range(len(ends))] + replayed
        for _ in range(self.epochs):
            self.rng.shuffle(data)
            for k in range(0, len(data), self.batch_size):
                chunk = data[k: k + self.batch_size]
                for h in sorted({h for h, _ in chunk}):  # a minibatch's rows, grouped by the batch that holds them
                    loss = self._loss(*self._rows(self.history[h], [i for hh, i in chunk if hh == h]))
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    self.opt.step()
        with self._judging():
            after = self._loss(batch, ends, labels).item()
        return {"loss_before": before, "loss": after, "replayed": len(replayed)}

    def step_rewards(self, batch: Batch, ends: list[list[int]]) -> list[list[float]]:
        """The PRM's reward for each step: its probability that the step is correct."""
        with self._judging():
            probs = torch.sigmoid(self.model(batch))
        return [[float(probs[i, e]) for e in es] for i, es in enumerate(ends)]
