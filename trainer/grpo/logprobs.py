"""Per-token log-probabilities of given completions (teacher-forced), without materialising fp32 logits
for the whole vocabulary at once.

`token_logprobs` with `chunk_tokens=0` is the plain way: one forward, one log-softmax over [N, C, V].

For a batch of N completions of C tokens and a vocabulary V, the plain way builds [N, C, V] logits and a
float32 log-softmax of the same size: with Qwen2.5's V = 151,936, 512 sequences × 512 tokens that is 160 GB.
Here the final hidden states [N·C, H] go through the output layer in chunks of `chunk_tokens` positions;
each chunk's logits are turned into log-probs (and entropies) in float32 and dropped. With gradients on,
each chunk is wrapped in activation checkpointing, so the backward pass recomputes one chunk's logits at a
time instead of keeping them all.

The hidden-state path is used for architectures whose logits are exactly `lm_head(final hidden state)`
(Llama, Qwen2/3, Mistral); any other model's logits come from its own forward and only the float32
log-softmax is chunked.

`Scorer` wraps a model as an `nn.Module` whose forward is this computation, so that DistributedDataParallel
can wrap it (DDP's gradient synchronisation needs the whole computation inside one forward call).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from . import models
from .rollout import Batch, positions

HIDDEN_PATH_MODEL_TYPES = {"llama", "qwen2", "qwen3", "mistral"}


def _chunk_stats(logits: torch.Tensor, ids: torch.Tensor, temperature: float, with_entropy: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - lse
    if with_entropy:
        probs = torch.softmax(logits, dim=-1)
        entropy = lse - (probs * logits).sum(-1)
    else:
        entropy = torch.zeros_like(logp)
    return logp, entropy


def _causal_lm(model):
    """The transformers CausalLM inside a peft wrapper (LoRA layers are injected in place, so running the
    base runs the adapters too, and `disable_adapter()` still applies)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def chunked_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                           prompt_len: int, completion_ids: torch.Tensor, temperature: float, with_entropy: bool,
                           chunk_tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    n, c = completion_ids.shape
    lm = _causal_lm(model)
    ids = completion_ids.reshape(-1)
    use_hidden = getattr(lm.config, "model_type", None) in HIDDEN_PATH_MODEL_TYPES and \
        lm.get_output_embeddings() is not None
    if use_hidden:
        hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False).last_hidden_state
        rows = hidden[:, prompt_len - 1:-1, :].reshape(n * c, -1)
        head = lm.get_output_embeddings()

        def part(h: torch.Tensor, t: torch.Tensor):
            return _chunk_stats(head(h), t, temperature, with_entropy)
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                       use_cache=False).logits
        rows = logits[:, prompt_len - 1:-1, :].reshape(n * c, -1)

        def part(h: torch.Tensor, t: torch.Tensor):
            return _chunk_stats(h, t, temperature, with_entropy)

    logps, ents = [], []
    grad = torch.is_grad_enabled() and rows.requires_grad
    for start in range(0, n * c, chunk_tokens):
        h, t = rows[start:start + chunk_tokens], ids[start:start + chunk_tokens]
        lp, en = checkpoint(part, h, t, use_reentrant=False) if grad else part(h, t)
        logps.append(lp)
        ents.append(en)
    logp = torch.cat(logps).view(n, c)
    entropy = torch.cat(ents).view(n, c) if with_entropy else None
    return logp, entropy


def token_logprobs(model, batch: Batch, temperature: float = 1.0, with_entropy: bool = False,
                   chunk_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities [N, C] of the completion tokens under `model` (logits / temperature, as at
    sampling time), and optionally the per-token entropy of that distribution. `chunk_tokens` > 0 computes
    the log-softmax that many positions at a time (`chunked_token_logprobs`)."""
    input_ids, attention_mask = batch.input_ids, batch.attention_mask
    p = batch.prompt_ids.shape[1]
    if chunk_tokens > 0:
        return chunked_token_logprobs(model, input_ids, attention_mask, positions(attention_mask), p,
                                      batch.completion_ids, temperature, with_entropy, chunk_tokens)
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=positions(attention_mask), use_cache=False).logits
    logits = logits[:, p - 1:-1, :].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


class Scorer(torch.nn.Module):
    """model → (log-probs [N, C], entropy [N, C] or an empty tensor) of a batch's completion tokens, under
    mixed precision `dtype`, log-softmax chunked by `chunk_tokens` (0: all at once)."""

    def __init__(self, model, chunk_tokens: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model, self.chunk_tokens, self.dtype = model, chunk_tokens, dtype

    def forward(self, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature: float = 1.0,
                with_entropy: bool = False):
        batch = Batch(prompt_ids, prompt_mask, completion_ids, completion_mask, truncated=None)
        with models.autocast(prompt_ids.device, self.dtype):
            logp, ent = token_logprobs(self.model, batch, temperature, with_entropy, self.chunk_tokens)
        return logp, (ent if ent is not None else logp.new_zeros(0))


def score(scorer, batch, temperature: float = 1.0, with_entropy: bool = False, disable_adapter: bool = False):
    """Run a `Scorer` (or DDP around one) on a `rollout.Batch`. `disable_adapter`: score under the base
    model of a LoRA policy (the reference), no second copy of the weights."""
    inner = getattr(scorer, "module", scorer).model
    ctx = inner.disable_adapter() if disable_adapter else contextlib.nullcontext()
    with ctx:
        logp, ent = scorer(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask,
                           temperature, with_entropy)
    return logp, (ent if with_entropy else None)
