"""Looking inside the training: the `sample_group`, `score` and `compare` requests.

One implementation answers them for both ends that can: a running `train` process (between optimizer
steps, with its live policy and reference) and `python -m grpo serve --checkpoint DIR` (a checkpoint's
policy and the reference that was in force for it). Both hand it a `context.PolicyContext`, the one the
training step itself samples, rewards and scores with, so a group sampled here is prompted, sampled,
rewarded and given advantages exactly as training would at that step. docs/run-directory.md specifies the
requests.

Requests never touch the run: sampling uses its own seeded generator (the run's RNG streams are not
consumed), the policy's train/eval mode is restored, nothing is written to the run directory, and any
failure becomes an `ok: false` answer. Scoring is chunked (`PolicyContext.inspect_chunk`).
"""

from __future__ import annotations

import logging
import math
import secrets
import warnings
from typing import IO, Any

import torch

from . import algorithm, checkpoint, groups, models, protocol, records, replay, rollout, sft
from .context import PolicyContext, Source, eval_mode
from .records import CompareResult, GroupRecord, RescoreResult, ScoreResult

log = logging.getLogger("grpo")

MAX_GENERATIONS = 256
# Requests are answered one at a time (a serve process, or a train process between steps), so one request may
# generate at most this many tokens (num_generations × max_completion_length), or one group of the run's own
# settings when that is more: a larger one would leave everything else waiting for minutes.
MAX_REQUEST_TOKENS = 8192


class RequestError(ValueError):
    """Bad input to a request; the message names the problem and goes back as `error`."""


# --------------------------------------------------------------------------------------- parameters
_ENVELOPE = ("v", "type", "id")


def params_of(msg: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters, checked with the record that defines them (records.INSPECT, the same schema
    the extension's guards use): unknown names, missing and mistyped parameters are named."""
    record = records.INSPECT[msg["type"]][0].__name__
    fields = records.schema()["records"][record]["fields"]
    names = [f["name"] for f in fields]
    params = {k: v for k, v in msg.items() if k not in _ENVELOPE}
    for name in params:
        if name not in names:
            raise RequestError(f"unknown parameter {name!r} for {msg['type']} (it takes {', '.join(names)})")
    for problem in records.validate(record, params):
        where, _, what = problem.partition(": ")
        name = where.split(".", 1)[1].split(" ", 1)[0]
        if where.endswith(" is missing"):
            raise RequestError(f"{msg['type']} needs the parameter {name!r}")
        base = name.split("[", 1)[0]  # a list's item: 'variants' (variants[0])
        raise RequestError(f"parameter {base!r}{f' ({name})' if base != name else ''}: {what}")
    return params


def _int_in(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise RequestError(f"parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def _seed(params: dict) -> int:
    if "seed" in params:
        return _int_in("seed", params["seed"], 0, 2**63 - 1)
    return secrets.randbits(31)  # reported back in `source.seed` so the answer can be reproduced


def _vocabulary(tokenizer, name: str, text: str) -> None:
    try:
        models.check_vocabulary(tokenizer, text)
    except ValueError as e:
        raise RequestError(f"{name}: {e}") from None


def _question_prompt(ctx: PolicyContext, question: str, max_new_tokens: int) -> tuple[str, list[int]]:
    """The question's training prompt (text, ids), checked against the vocabulary, max_prompt_length and
    the model's context."""
    if not question.strip():
        raise RequestError("parameter 'question' is empty")
    _vocabulary(ctx.tokenizer, "question", question)
    text = ctx.prompt(question)
    ids = sft.encode(ctx.tokenizer, text)
    limit = ctx.settings.max_prompt_length
    if len(ids) > limit:
        raise RequestError(f"the question is {len(ids)} tokens as a prompt, longer than max_prompt_length "
                           f"({limit})")
    context = _context(ctx.policy)
    if len(ids) + max_new_tokens > context:
        raise RequestError(f"the question is {len(ids)} tokens; with max_completion_length {max_new_tokens} "
                           f"it exceeds the model's context of {context} tokens")
    return text, ids


def _context(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20)


def _r6(t: torch.Tensor) -> list[float]:
    return [round(float(x), 6) for x in t.tolist()]


# --------------------------------------------------------------------------------------- sample_group
def sample_group(ctx: PolicyContext, question: str, answer: str | None, *, num_generations: int,
                 temperature: float, max_new_tokens: int, generator: torch.Generator, step: int | None,
                 prompt: tuple[str, list[int]] | None = None) -> dict[str, Any]:
    """G completions of `question` collected as a training step collects them (`PolicyContext.roll_out`:
    the training prompt, the configured engine, rewarder and advantages) and recorded as training logs a
    group (groups.group_record), with per-token log-probs under the policy and the reference at the
    sampling temperature, k3 KL and entropy. `answer=None` gives every completion reward 0. Where the task
    checks steps, the per-step rewards are added even under outcome supervision (they do not change the
    advantages then)."""
    G = num_generations
    text, ids = prompt if prompt is not None else (ctx.prompt(question), ctx.prompt_ids(question))
    if ctx.settings.reward == "process":
        try:
            ctx.task.steps(question, "")
        except ValueError as e:
            raise RequestError(f"process rewards need a question the task checks step by step: {e}") from None
    row = {"question": question, "answer": answer, "prompt": text}
    group = ctx.roll_out([row], [ids], G, generator, temperature=temperature, max_new_tokens=max_new_tokens)
    batch, scored = group.batch, group.scored
    logp, entropy = ctx.score(batch, temperature, with_entropy=True, chunk_tokens=ctx.inspect_chunk)
    ref_logp, _ = ctx.score(batch, temperature, reference=True, chunk_tokens=ctx.inspect_chunk)
    group.logp, group.entropy, group.ref_logp = logp.cpu(), entropy.cpu(), ref_logp.cpu()
    if not scored.step_rewards and ctx.task.has_steps:
        try:
            per = [ctx.task.steps(question, t) for t in group.texts]
        except ValueError:
            per = None
        if per is not None:
            scored.step_rewards = [rs for rs, _ in per]
            scored.step_ends = [e for _, e in per]
            ids_ = batch.completion_ids.tolist()
            group.step_ends = [groups.char_to_token_ends(ctx.tokenizer, ids_[i][: int(batch.lengths[i])],
                                                         scored.step_ends[i]) for i in range(G)]
    rec = groups.group_record(ctx.tokenizer, step if step is not None else -1, group)
    if scored.errors:
        rec["reward_errors"] = scored.errors
    return rec


def request_token_limit(ctx: PolicyContext) -> int:
    """The most tokens one sample_group request may generate: MAX_REQUEST_TOKENS, or one group of the run's
    settings (num_generations × max_completion_length) when that is more."""
    s = ctx.settings
    return max(MAX_REQUEST_TOKENS, s.num_generations * s.max_completion_length)


def _sample_group(ctx: PolicyContext, source: Source, params: dict) -> GroupRecord:
    s = ctx.settings
    G = _int_in("num_generations", params.get("num_generations", s.num_generations), 2, MAX_GENERATIONS)
    temperature = float(params.get("temperature", s.temperature))
    if not 0 < temperature <= 100:
        raise RequestError(f"parameter 'temperature' must be > 0 for sample_group (training samples at a "
                           f"positive temperature), got {temperature}")
    max_new = _int_in("max_completion_length", params.get("max_completion_length", s.max_completion_length),
                      1, _context(ctx.policy))
    limit = request_token_limit(ctx)
    if G * max_new > limit:
        raise RequestError(f"parameters 'num_generations' × 'max_completion_length' = {G} × {max_new} = {G * max_new} "
                           f"tokens, more than one request may generate ({limit}, as requests are answered one at a "
                           f"time); lower either")
    question = params["question"]
    prompt = _question_prompt(ctx, question, max_new)
    answer, note = params.get("answer"), None
    if answer is None:
        answer = ctx.task.answer(question)
        if answer is None:
            note = "no answer given and none known for this question: every reward is 0"
    seed = _seed(params)
    gen = torch.Generator(device=ctx.device).manual_seed(seed)
    rec = sample_group(ctx, question, answer, num_generations=G, temperature=temperature, max_new_tokens=max_new,
                       generator=gen, step=source.step, prompt=prompt)
    if note:
        rec["note"] = note
    rec["source"] = source.as_dict(seed=seed, temperature=temperature, max_completion_length=max_new)
    return rec


# --------------------------------------------------------------------------------------- score
def _text_tokens(tokenizer, text: str) -> tuple[list[int], list[list[int]]]:
    """Token ids of `text` (no special tokens added) and each token's [start, end) character offsets."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [[int(a), int(b)] for a, b in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer: offsets from decoded lengths
        ids = sft.encode(tokenizer, text)
        offsets, pos = [], 0
        for tid in ids:
            n = len(tokenizer.decode([tid]))
            offsets.append([pos, min(len(text), pos + n)])
            pos += n
        return ids, offsets


def score(ctx: PolicyContext, text: str, prompt: str = "", step: int | None = None) -> ScoreResult:
    """Per-token log-probabilities of `text` as a continuation of `prompt` under the policy and the
    reference (the models' own distributions, temperature 1; what the ONNX export computes), k3 KL and
    the policy's entropy. With an empty prompt the text's first token has nothing before it (no BOS is
    added, as in training) and is not scored: `tokens` and `offsets` start at the second token then."""
    tokenizer = ctx.tokenizer
    if not text:
        raise RequestError("parameter 'text' is empty")
    _vocabulary(tokenizer, "prompt", prompt)
    _vocabulary(tokenizer, "text", text)
    p_ids = sft.encode(tokenizer, prompt) if prompt else []
    t_ids, offsets = _text_tokens(tokenizer, text)
    ids = p_ids + t_ids
    context = _context(ctx.policy)
    if len(ids) > context:
        raise RequestError(f"prompt and text are {len(ids)} tokens, longer than the model's context of "
                           f"{context} tokens")
    first = max(1, len(p_ids))  # the first scored position of the sequence
    if len(ids) <= first:
        raise RequestError("nothing to score: with an empty prompt the text needs at least two tokens")
    prompt_t = torch.tensor([ids[:first]], dtype=torch.long, device=ctx.device)
    comp_t = torch.tensor([ids[first:]], dtype=torch.long, device=ctx.device)
    batch = rollout.Batch(prompt_t, torch.ones_like(prompt_t), comp_t, torch.ones_like(comp_t),
                          torch.zeros(1, dtype=torch.bool, device=ctx.device))
    logp, entropy = ctx.score(batch, 1.0, with_entropy=True, chunk_tokens=ctx.inspect_chunk)
    ref_logp, _ = ctx.score(batch, 1.0, reference=True, chunk_tokens=ctx.inspect_chunk)
    logp, entropy, ref_logp = logp[0].cpu(), entropy[0].cpu(), ref_logp[0].cpu()
    kl = algorithm.kl_k3(logp, ref_logp)
    skipped = first - len(p_ids)  # 1 when the text's first token is unscored
    return {
        "tokens": tokenizer.convert_ids_to_tokens(t_ids[skipped:]), "offsets": offsets[skipped:],
        "logp": _r6(logp), "ref_logp": _r6(ref_logp), "kl": _r6(kl), "entropy": _r6(entropy),
        "sequence_kl": round(float(kl.mean()), 6), "sum_logp": round(float(logp.sum()), 6),
        "sum_ref_logp": round(float(ref_logp.sum()), 6), "step": step,
    }


# --------------------------------------------------------------------------------------- compare
def compare(ctx: PolicyContext, source: Source, params: dict) -> CompareResult:
    """Greedy (or sampled) completions of the same question from the policy (by the configured engine) and
    from the reference, each scored under both models (temperature 1), with per-token k3 KL and
    logp_policy − logp_ref."""
    tok = ctx.tokenizer
    max_new = _int_in("max_completion_length", params.get("max_completion_length", ctx.settings.max_completion_length),
                      1, _context(ctx.policy))
    temperature = float(params.get("temperature", 0.0))
    if not 0 <= temperature <= 100:
        raise RequestError(f"parameter 'temperature' must be ≥ 0 (0: greedy), got {temperature}")
    question = params["question"]
    text, prompt = _question_prompt(ctx, question, max_new)
    seed = _seed(params)
    sides = {}
    for name in ("policy", "reference"):
        gen = torch.Generator(device=ctx.device).manual_seed(seed)
        if name == "policy":
            batch = ctx.generate([prompt], temperature=temperature, max_new_tokens=max_new, generator=gen)
        else:
            with ctx.as_reference() as model, eval_mode(model), models.autocast(ctx.device, ctx.dtype):
                batch = rollout.sample(model, [prompt], max_new_tokens=max_new, eos_id=tok.eos_token_id,
                                       pad_id=tok.pad_token_id, temperature=temperature, top_p=ctx.settings.top_p,
                                       generator=gen)
        pol, _ = ctx.score(batch, 1.0, chunk_tokens=ctx.inspect_chunk)
        ref, _ = ctx.score(batch, 1.0, reference=True, chunk_tokens=ctx.inspect_chunk)
        n = int(batch.lengths[0])
        pol, ref = pol[0, :n].cpu(), ref[0, :n].cpu()
        kl = algorithm.kl_k3(pol, ref)
        side = {"completion": tok.decode(batch.completion_ids[0, :n].tolist(), skip_special_tokens=True),
                "tokens": tok.convert_ids_to_tokens(batch.completion_ids[0, :n].tolist()),
                "truncated": bool(batch.truncated[0])}
        if name == "policy":
            side.update(logp=_r6(pol), ref_logp=_r6(ref))
        else:
            side.update(logp=_r6(ref), policy_logp=_r6(pol))
        side.update(kl=_r6(kl), logp_diff=_r6(pol - ref))
        sides[name] = (side, round(float(kl.mean()), 6) if n else 0.0)
    return {"question": question, "prompt": text,
            "policy": sides["policy"][0], "reference": sides["reference"][0],
            "sequence_kl": {"policy": sides["policy"][1], "reference": sides["reference"][1]},
            "step": source.step, "source": source.as_dict(seed=seed, temperature=temperature,
                                                         max_completion_length=max_new)}


# --------------------------------------------------------------------------------------- replay
def _replay(ctx: PolicyContext, source: Source, params: dict) -> records.ReplayResult:
    """A logged step of the source's run re-applied under its settings and the variants (replay.py): on a model
    of its own, loaded from the run's files, so the policy answering the other requests is untouched."""
    if source.run_dir is None:
        raise RequestError("replay needs a run directory: this serve answers about a bare model directory")
    try:
        return replay.replay(source.run_dir, params["step"], params.get("variants", []), ctx.device)
    except (replay.ReplayError, checkpoint.CheckpointError) as e:
        raise RequestError(str(e)) from None


# --------------------------------------------------------------------------------------- rescore
def rescore(ctx: PolicyContext, source: Source, params: dict) -> RescoreResult:
    """An edited completion scored as training scores a sampled one: rewarded by the run's rewarder
    (`PolicyContext.reward`, as `roll_out` rewards), the group's advantages recomputed with the edit in place by
    the training function (`groups.compute_advantages`, the run's `reward` and `scale_rewards`), step rewards
    where the task checks steps, and per-token log-probs under the policy and the reference as a
    continuation of the question's training prompt (`score`: temperature 1), with π_θ/π_ref per token."""
    tok, s = ctx.tokenizer, ctx.settings
    question, completion = params["question"], params["completion"]
    if not completion:
        raise RequestError("parameter 'completion' is empty")
    _vocabulary(tok, "completion", completion)
    texts, index = [completion], 0
    if "group" in params:
        texts = list(params["group"])
        if not 2 <= len(texts) <= MAX_GENERATIONS:
            raise RequestError(f"parameter 'group' must hold 2 to {MAX_GENERATIONS} completions, got {len(texts)}")
        if "index" not in params:
            raise RequestError("parameter 'index' is needed with 'group' (the edited completion's place in it)")
        index = _int_in("index", params["index"], 0, len(texts) - 1)
        for i, t in enumerate(texts):
            if i != index:
                _vocabulary(tok, f"group[{i}]", t)
        texts[index] = completion
    elif "index" in params:
        _int_in("index", params["index"], 0, 0)  # one completion without a group: index 0 only
    G = len(texts)
    prompt_text, p_ids = _question_prompt(ctx, question, 0)
    t_ids = _text_tokens(tok, completion)[0]
    context = _context(ctx.policy)
    if len(p_ids) + len(t_ids) > context:
        raise RequestError(f"parameter 'completion': the prompt and the completion are {len(p_ids) + len(t_ids)} "
                           f"tokens, longer than the model's context of {context} tokens")
    if s.reward == "process":
        try:
            ctx.task.steps(question, "")
        except ValueError as e:
            raise RequestError(f"process rewards need a question the task checks step by step: {e}") from None
    answer, notes = params.get("answer"), []
    if answer is None:
        answer = ctx.task.answer(question)
        if answer is None:
            notes.append("no answer given and none known for this question: every reward is 0")
    if s.scale_rewards == "batch" and G > 1:
        notes.append("scale_rewards is 'batch': the advantages are scaled by this group's rewards alone (the "
                     "step's other groups are not part of the request)")

    ids = [t_ids if i == index else sft.encode(tok, t) for i, t in enumerate(texts)]
    scored = ctx.reward([{"question": question, "answer": answer, "prompt": prompt_text}] * G, texts, ids)
    batch = _completions_batch(ids, p_ids, tok.eos_token_id, tok.pad_token_id)
    with warnings.catch_warnings():  # a group of one: its std has no degrees of freedom (no signal: advantage 0)
        warnings.simplefilter("ignore", UserWarning)
        advantages, seq_adv, _ = groups.compute_advantages(tok, batch, scored, G, s.reward, s.scale_rewards)
    n = len(t_ids)
    per_token = advantages[index, :n] if advantages.dim() == 2 else seq_adv[index].expand(n)

    scores = score(ctx, completion, prompt_text, source.step)
    result: RescoreResult = {
        "question": question, "answer": answer, "prompt": prompt_text, "completion": completion, "index": index,
        "reward": scored.rewards[index], "correct": bool(scored.correct[index]),
        "advantage": round(float(seq_adv[index]), 6),
        "rewards": list(scored.rewards), "advantages": _r6(seq_adv),
        "tokens": scores["tokens"], "offsets": scores["offsets"], "logp": scores["logp"],
        "ref_logp": scores["ref_logp"], "kl": scores["kl"],
        "ratio": [round(math.exp(a - b), 6) for a, b in zip(scores["logp"], scores["ref_logp"])],
        "token_advantages": _r6(per_token), "sequence_kl": scores["sequence_kl"], "step": source.step,
        "source": source.as_dict(),
    }
    steps = _completion_steps(ctx, question, completion, scored, index)
    if steps is not None:
        result["step_rewards"] = list(steps[0])
        result["step_ends"] = groups.char_to_token_ends(tok, t_ids, steps[1]) if t_ids else []
    if scored.errors:
        result["reward_errors"] = scored.errors
    if notes:
        result["note"] = "; ".join(notes)
    return result


def _completions_batch(ids: list[list[int]], prompt: list[int], eos: int | None, pad: int | None) -> rollout.Batch:
    """Completions (token ids, each ended by EOS as a finished sample is) after one prompt, as a Batch: the
    layout `groups.compute_advantages` reads lengths and step ends from."""
    seqs = [c + ([eos] if eos is not None else []) for c in ids]
    width = max(1, max(len(c) for c in seqs))
    pad = pad if pad is not None else (eos if eos is not None else 0)
    comp = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, c in enumerate(seqs):
        comp[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, : len(c)] = 1
    p = torch.tensor([prompt] * len(seqs), dtype=torch.long)
    return rollout.Batch(p, torch.ones_like(p), comp, mask, torch.zeros(len(seqs), dtype=torch.bool))


def _completion_steps(ctx: PolicyContext, question: str, completion: str, scored, index: int
                      ) -> tuple[list[float], list[int]] | None:
    """The edited completion's step rewards and their character ends: the rewarder's (process supervision),
    else the task's where it checks this question step by step (they do not change the advantages then)."""
    if scored.step_rewards:
        return scored.step_rewards[index], scored.step_ends[index]
    if not ctx.task.has_steps:
        return None
    try:
        return ctx.task.steps(question, completion)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- dispatch
def handle(ctx: PolicyContext, source: Source, msg: dict[str, Any]) -> dict[str, Any]:
    """The result of one inspection request; raises RequestError on bad input."""
    params = params_of(msg)
    kind = msg["type"]
    if kind == protocol.SAMPLE_GROUP:
        return _sample_group(ctx, source, params)
    if kind == protocol.SCORE:
        result = score(ctx, params["text"], params.get("prompt", ""), source.step)
        return {**result, "source": source.as_dict()}
    if kind == protocol.REPLAY:
        return _replay(ctx, source, params)
    if kind == protocol.RESCORE:
        return rescore(ctx, source, params)
    return compare(ctx, source, params)


def answer(ctx: PolicyContext, source: Source, msg: dict[str, Any]) -> dict[str, Any]:
    """`{"ok": true, "result": …}` or `{"ok": false, "error": …}`; never raises for a request's sake."""
    try:
        return {"ok": True, "result": handle(ctx, source, msg)}
    except RequestError as e:
        return {"ok": False, "error": str(e)}
    except torch.cuda.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"ok": False, "error": f"{msg['type']}: out of GPU memory (try fewer generations or tokens)"}
    except Exception as e:  # noqa: BLE001 - a request must never take the trainer down
        log.exception("request %s failed", msg.get("type"))
        return {"ok": False, "error": f"{msg['type']} failed: {type(e).__name__}: {e}"}


# --------------------------------------------------------------------------------------- serve
def serve(ctx: PolicyContext, where: Source, stream: protocol.Stream, source: IO[str]) -> int:
    """Answer requests from `source`, one per line, until it closes or a `stop` request arrives (bad lines
    are answered and skipped by protocol.read_requests)."""
    for msg in protocol.read_requests(source, stream):
        kind = msg["type"]
        if kind == protocol.STOP:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=True, result={"action": kind})
            break
        if kind in protocol.INSPECT_TYPES:
            stream.send(protocol.RESPONSE, id=msg.get("id"), **answer(ctx, where, msg))
        elif kind in protocol.CONTROL_TYPES:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                        error=f"{kind!r}: serve answers requests about a checkpoint; there is no training to control")
        else:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                        error=f"unknown request type {kind!r} (serve answers {', '.join(protocol.INSPECT_TYPES)}, stop)")
    return 0
