"""Sampled groups: `Group` (completions, rewards, advantages and, as a step computes them, log-probs), their
advantages, and their record: the same code for training, inspection and the TRL bridge.

`compute_advantages` is exactly what a GRPO step optimises with; `group_record` is the samples.jsonl record
(docs/run-directory.md) that `grpo sample`, `serve` and live requests answer with too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import algorithm, ledger, rollout
from .records import GroupRecord
from .rewards import Scored
from .rollout import Batch


@dataclass
class Group:
    """G completions for each of some questions (`rows`: question, answer or None, prompt text), rewarded,
    with the advantages (or a method's gradient coefficients) training optimises. The per-token log-probs
    and entropy [N, C] are filled in as a step (or an inspection) computes them."""

    rows: list[dict]
    batch: Batch
    texts: list[str]
    scored: Scored
    advantages: torch.Tensor                 # [N] (outcome) or [N, C] (process, coefficients)
    seq_adv: torch.Tensor                    # [N]: one value per completion
    step_ends: list | None = None            # token index of each step's end (process supervision)
    ref_logp: torch.Tensor | None = None     # π_ref
    old_logp: torch.Tensor | None = None     # π_old, when computed (μ > 1, PPO's reward)
    logp: torch.Tensor | None = None         # π_θ in the first update (π_ref's if none ran)
    entropy: torch.Tensor | None = None
    filtered_groups: int = 0                 # groups dynamic sampling sampled and discarded for this step
    filtered_tokens: float = 0.0             # their completion tokens

    @property
    def G(self) -> int:
        return len(self.texts) // max(1, len(self.rows))


def char_to_token_ends(tokenizer, completion_ids: list[int], char_ends: list[int]) -> list[int]:
    """Map character indices in the decoded completion to the index of the token that holds them. Characters
    are counted on decoded prefixes, not token by token: a character split over several byte-level tokens
    (`×` is two) decodes to one character only with its neighbours."""
    pieces = [tokenizer.decode([t], skip_special_tokens=True) for t in completion_ids]
    if any("\ufffd" in p for p in pieces):  # a split character: count on prefixes (quadratic, so only then)
        cum = [len(tokenizer.decode(completion_ids[: i + 1], skip_special_tokens=True))
               for i in range(len(completion_ids))]
    else:
        cum, total = [], 0
        for p in pieces:
            total += len(p)
            cum.append(total)  # characters covered after this token
    return [next((i for i, c in enumerate(cum) if c > end), len(cum) - 1) for end in char_ends]


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


def group_record(tokenizer, step: int, group: Group, question: int = 0) -> GroupRecord:
    """The G completions of `group.rows[question]` with per-token arrays (log-probs under the policy, π_old
    and π_ref, k3 KL, advantage, entropy; the group's log-probs must be filled in): a samples.jsonl record,
    also what `grpo sample` prints and the inspector shows."""
    G, batch, scored = group.G, group.batch, group.scored
    idx = range(question * G, (question + 1) * G)
    row, logp = group.rows[question], group.logp
    old = logp if group.old_logp is None else group.old_logp
    kl = algorithm.kl_k3(logp, group.ref_logp)
    adv_tok = group.advantages if group.advantages.dim() == 2 else group.advantages[:, None].expand_as(logp)
    entropy = group.entropy if group.entropy is not None else torch.zeros_like(logp)
    per_token = []
    for i in idx:
        n = int(batch.lengths[i])
        ids = batch.completion_ids[i, :n].tolist()
        r6 = lambda t: [round(float(x), 6) for x in t[i, :n].tolist()]  # noqa: E731
        per_token.append({"text": tokenizer.convert_ids_to_tokens(ids), "logp": r6(logp), "old_logp": r6(old),
                          "ref_logp": r6(group.ref_logp), "kl": r6(kl), "advantage": r6(adv_tok),
                          "entropy": r6(entropy)})
    rec: GroupRecord = {
        "step": step, "question": row["question"], "answer": row["answer"],
        "prompt": row["prompt"],
        "completions": [group.texts[i] for i in idx], "rewards": [scored.rewards[i] for i in idx],
        "correct": [scored.correct[i] for i in idx],
        "advantages": [round(float(group.seq_adv[i]), 6) for i in idx],
        "truncated": [bool(batch.truncated[i]) for i in idx], "tokens": per_token,
        "kind": ledger.group_kinds(group.advantages[idx.start:idx.stop], scored.correct[idx.start:idx.stop], G)[0],
    }
    if scored.components:
        rec["reward_functions"] = {name: [v[i] for i in idx] for name, v in scored.components.items()}
    if scored.step_rewards:
        rec["step_rewards"] = [scored.step_rewards[i] for i in idx]
        rec["step_ends"] = [group.step_ends[i] for i in idx]
    return rec


def select(group: Group, questions: list[int]) -> Group:
    """The groups of `group.rows[q]` for q in `questions` (log-probs are not carried: select before scoring)."""
    G = group.G
    idx = [q * G + j for q in questions for j in range(G)]
    b, s = group.batch, group.scored
    batch = rollout.Batch(b.prompt_ids[idx], b.prompt_mask[idx], b.completion_ids[idx], b.completion_mask[idx],
                          b.truncated[idx])
    pick = lambda xs: [xs[i] for i in idx] if xs else xs  # noqa: E731
    scored = Scored(pick(s.rewards), pick(s.correct), pick(s.step_rewards), pick(s.step_ends), list(s.errors),
                    {name: pick(v) for name, v in s.components.items()}, dict(s.metrics))
    return Group([group.rows[q] for q in questions], batch, pick(group.texts), scored, group.advantages[idx],
                 group.seq_adv[idx], pick(group.step_ends) if group.step_ends is not None else None)


def concat(parts: list[Group], pad_id: int) -> tuple[rollout.Batch, list, list, Scored]:
    """The batches, rows, texts and rewards of `parts` as one (prompts left-padded, completions right-padded to
    the widest); the caller computes the advantages of the whole."""
    P = max(p.batch.prompt_ids.shape[1] for p in parts)
    C = max(p.batch.completion_ids.shape[1] for p in parts)

    def pad(t: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
        extra = t.new_full((t.shape[0], width - t.shape[1]), value)
        return torch.cat([extra, t] if left else [t, extra], dim=1)

    batch = rollout.Batch(torch.cat([pad(p.batch.prompt_ids, P, pad_id, True) for p in parts]),
                          torch.cat([pad(p.batch.prompt_mask, P, 0, True) for p in parts]),
                          torch.cat([pad(p.batch.completion_ids, C, pad_id, False) for p in parts]),
                          torch.cat([pad(p.batch.completion_mask, C, 0, False) for p in parts]),
                          torch.cat([p.batch.truncated for p in parts]))
    scored = Scored([r for p in parts for r in p.scored.rewards], [c for p in parts for c in p.scored.correct],
                    [r for p in parts for r in p.scored.step_rewards], [e for p in parts for e in p.scored.step_ends],
                    [e for p in parts for e in p.scored.errors],
                    {name: [v for p in parts for v in p.scored.components.get(name, [None] * len(p.texts))]
                     for name in parts[0].scored.components},
                    {k: [v for p in parts for v in p.scored.metrics.get(k, [])] for k in parts[0].scored.metrics})
    return batch, [r for p in parts for r in p.rows], [t for p in parts for t in p.texts], scored
