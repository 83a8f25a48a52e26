"""A sampled group's rewards become advantages and a record: the same functions for training and inspection.

`compute_advantages` is exactly what a GRPO step optimises with; `group_record` is the samples.jsonl record
(docs/run-directory.md) that `grpo sample`, `serve` and live requests answer with too.
"""

from __future__ import annotations

import torch

from . import algorithm
from .records import GroupRecord


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
                 old_logp, ref_logp, entropy, step_ends_tok) -> GroupRecord:
    """One whole group (completions `idx` of the batch; `row` has its question, answer and prompt text) with
    per-token arrays: a samples.jsonl record, also what `grpo sample` prints and the inspector shows."""
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
    rec: GroupRecord = {
        "step": step, "question": row["question"], "answer": row["answer"],
        "prompt": row["prompt"],
        "completions": [texts[i] for i in idx], "rewards": [scored.rewards[i] for i in idx],
        "correct": [scored.correct[i] for i in idx],
        "advantages": [round(float(seq_adv[i]), 6) for i in idx],
        "truncated": [bool(batch.truncated[i]) for i in idx], "tokens": per_token,
    }
    if scored.step_rewards:
        rec["step_rewards"] = [scored.step_rewards[i] for i in idx]
        rec["step_ends"] = [step_ends_tok[i] for i in idx]
    return rec
