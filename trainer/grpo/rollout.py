"""Sampling groups from the policy, and the batch layout everything downstream scores (`Batch`).

`sample` is an incremental decoding loop over a transformers causal LM with a KV cache (`DynamicCache`):
the prompt is encoded once, then one token per step is fed for every unfinished sequence. `use_cache=False`
re-runs the whole prefix each step; it exists as the baseline the benchmark measures against.
Scoring given completions (teacher-forced log-probabilities) is logprobs.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache


@dataclass
class Batch:
    """Prompts left-padded to [N, P] followed by completions right-padded to [N, C]."""

    prompt_ids: torch.Tensor        # [N, P]
    prompt_mask: torch.Tensor       # [N, P]
    completion_ids: torch.Tensor    # [N, C]
    completion_mask: torch.Tensor   # [N, C] 1 for real completion tokens (EOS included)
    truncated: torch.Tensor         # [N] bool: hit max length without EOS

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)


def left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(1) - 1).clamp(min=0)


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p  # always keeps the most likely token
        sorted_p = sorted_p * keep
        choice = torch.multinomial(sorted_p, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def completion_batch(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion: torch.Tensor,
                     eos_id: int) -> Batch:
    """Mask every token after the first EOS (the EOS itself counts); no EOS means truncated."""
    is_eos = completion == eos_id
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    return Batch(prompt_ids, prompt_mask, completion, (~after_eos).long(), ~is_eos.any(1))


@torch.no_grad()
def sample(model, prompts: list[list[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
           temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None,
           use_cache: bool = True, compact_at: float = 0.25) -> Batch:
    """Sample one completion per prompt (repeat a prompt G times for a group). temperature 0 is greedy.

    Finished rows leave the decode batch (with their rows of the KV cache) once they are `compact_at` of it,
    so later steps compute only the rows still decoding; compacting at every finish would copy the cache
    once per finished row. The result is laid out as if every row had decoded to the end."""
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)
    n = prompt_ids.shape[0]
    out = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device)  # the decode batch's rows, as rows of the whole batch
    done = torch.zeros(n, dtype=torch.bool, device=device)
    ids, mask = prompt_ids, prompt_mask
    cache = DynamicCache() if use_cache else None
    step_input, step_pos = ids, positions(mask)
    written = 0
    for t in range(max_new_tokens):
        logits = model(input_ids=step_input, attention_mask=mask, position_ids=step_pos,
                       past_key_values=cache, use_cache=use_cache, logits_to_keep=1).logits[:, -1, :]
        token = _pick(logits, temperature, top_p, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out[rows, t] = token
        written = t + 1
        done = done | (token == eos_id)
        finished = int(done.sum())
        if finished == len(rows):
            break
        mask = torch.cat([mask, (~done | (token == eos_id)).long()[:, None]], dim=1)
        if finished >= compact_at * len(rows):
            keep = (~done).nonzero().squeeze(1)
            rows, done, mask, token, ids = rows[keep], done[keep], mask[keep], token[keep], ids[keep]
            if use_cache:
                cache.batch_select_indices(keep)
        if use_cache:
            step_input = token[:, None]
            step_pos = positions(mask)[:, -1:]
        else:
            step_input = torch.cat([ids, out[rows, :written]], dim=1)
            step_pos = positions(mask)
    return completion_batch(prompt_ids, prompt_mask, out[:, :written], eos_id)
