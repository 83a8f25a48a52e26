"""The supervised warm-up (the paper's SFT stage) and greedy evaluation."""

from __future__ import annotations

import torch

from . import logprobs, prompts, rollout, verify


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_many(tokenizer, texts: list[str]) -> list[list[int]]:
    """`encode` of each text, in one call (a fast tokenizer encodes the list at once: half the time of one
    call per text on an SFT batch)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def teacher_batch(tokenizer, prompts: list[str], targets: list[str], device) -> rollout.Batch:
    """Prompts left-padded, targets (+ EOS) right-padded: the layout `logprobs.token_logprobs` scores."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    p_ids, p_mask = rollout.left_pad(encode_many(tokenizer, prompts), pad, device)
    targets_ids = [torch.tensor(t + [eos]) for t in encode_many(tokenizer, targets)]
    c_ids = torch.nn.utils.rnn.pad_sequence(targets_ids, batch_first=True, padding_value=pad)
    c_mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(t) for t in targets_ids], batch_first=True)
    return rollout.Batch(p_ids, p_mask, c_ids.to(device), c_mask.to(device),
                         torch.zeros(len(targets_ids), dtype=torch.bool, device=device))


def target_weights(weights: torch.Tensor, width: int, scope: str) -> torch.Tensor:
    """Per-token loss weights [N, width] from one weight per target: on every token (`sequence`) or on the
    first token only (`first_token`: the token that chooses the answer's style), the rest weighing 1."""
    if scope == "sequence":
        return weights[:, None].expand(-1, width).clone()
    if scope != "first_token":
        raise ValueError(f"unknown weighting scope {scope!r}")
    out = torch.ones(len(weights), width)
    out[:, 0] = weights
    return out


def sft_loss(model, batch: rollout.Batch, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-likelihood of the target tokens; with `weights` ([N] per sequence or [N, T] per token)
    each token counts its weight, normalised by the weighted token count. `model` is a causal LM or a
    `logprobs.Scorer` (possibly inside DDP)."""
    if isinstance(getattr(model, "module", model), logprobs.Scorer):
        logp, _ = logprobs.score(model, batch)
    else:
        logp, _ = logprobs.token_logprobs(model, batch)
    mask = batch.completion_mask.float()
    if weights is not None:
        w = weights.to(mask.device, mask.dtype)
        mask = mask * (w[:, None] if w.dim() == 1 else w)
    return -(logp * mask).sum() / mask.sum()


class Stopped(Exception):
    """`should_stop()` said so between batches: the completions asked for were not all made."""


@torch.no_grad()
def complete(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, *, temperature: float = 0.0,
             top_p: float = 1.0, generator: torch.Generator | None = None, engine=None,
             batch_size: int = 256, should_stop=None) -> list[str]:
    """One decoded completion per prompt, `batch_size` prompts at a time, in eval mode (the previous mode is
    restored). `engine`: a rollout engine (engines.py); default the KV-cache sampler. temperature 0: greedy.
    `should_stop()`, asked before each batch, raises Stopped when true (a stop request during evaluation)."""
    was_training = model.training
    model.eval()
    sample = engine.generate if engine is not None else rollout.sample
    texts: list[str] = []
    try:
        for i in range(0, len(prompt_ids), batch_size):
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped after {i} of {len(prompt_ids)} completions")
            batch = sample(model, prompt_ids[i: i + batch_size], max_new_tokens=max_new_tokens,
                           eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, temperature=temperature,
                           top_p=top_p, generator=generator)
            texts += tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return texts


def greedy_accuracy(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int = 256,
                    prompt_fn=prompts.plain, check=verify.number_matches, engine=None,
                    should_stop=None) -> tuple[float, list[str]]:
    """Fraction of rows whose greedy completion has the right final answer (by `check`), and the completions."""
    prompt_ids = encode_many(tokenizer, [prompt_fn(r["question"]) for r in rows])
    texts = complete(model, tokenizer, prompt_ids, max_new_tokens, engine=engine, batch_size=batch_size,
                     should_stop=should_stop)
    correct = sum(check(t, r["answer"]) for t, r in zip(texts, rows))
    return correct / max(1, len(rows)), texts
