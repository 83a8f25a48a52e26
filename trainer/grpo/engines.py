"""Rollout engines: how the policy's completions are sampled, behind one small interface.

    engine = engines.make(name, device, dtype)
    batch = engine.generate(model, prompts, max_new_tokens=…, eos_id=…, pad_id=…, temperature=…, top_p=…,
                            generator=…)          # -> rollout.Batch, the layout training scores
    engine.sync(model)                           # after an optimizer step (engines that hold their own copy)

Every engine samples all G × questions sequences of a step as one batch.

- `kv_cache` (`rollout.sample`): incremental decoding with transformers' DynamicCache. The default on CPU.
- `static`: the same loop over a preallocated `StaticCache` and a preallocated attention mask, so every decode
  step has the same shapes; on CUDA the decode step is compiled with `torch.compile(mode="reduce-overhead")`
  (CUDA graphs). The default on CUDA. On CPU it runs uncompiled (tested to give the kv_cache engine's tokens);
  the compiled CUDA path is GPU-only and NOT exercised by the CPU test suite.
- `hf_generate`: transformers' `model.generate()`, the baseline the benchmark compares against.
- `vllm`: only when the `vllm` package is importable (GPU-only, NOT exercised by the CPU tests): a vLLM engine
  in this process loads the model directory once and receives the policy's weights after every update.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import torch

from . import models, rollout

log = logging.getLogger("grpo")

NAMES = ("kv_cache", "static", "hf_generate", "vllm")


def resolve(setting: str, device: torch.device) -> str:
    if setting == "auto":
        return "static" if device.type == "cuda" else "kv_cache"
    if setting == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ValueError("setting 'rollout_engine' is vllm but the vllm package is not importable") from None
        if device.type != "cuda":
            raise ValueError("setting 'rollout_engine': vllm needs a CUDA device")
    return setting


def make(setting: str, device: torch.device, dtype: torch.dtype = torch.float32, model_path: str | None = None):
    name = resolve(setting, device)
    if name == "kv_cache":
        return KVCacheEngine(dtype)
    if name == "static":
        return StaticCacheEngine(dtype, compile=device.type == "cuda")
    if name == "hf_generate":
        return HFGenerateEngine(dtype)
    return VLLMEngine(dtype, model_path)


class KVCacheEngine:
    """Also the base of the other engines: `rollout_model` gives the weights decoding runs on. Decoding is
    bound by reading the weights, so when training keeps float32 weights and the compute dtype is 16-bit,
    decoding uses a 16-bit copy (refreshed by `sync` after each update) instead of casting every weight on
    every decode step under autocast. LoRA models (16-bit base already) and float32 runs use the model."""

    name = "kv_cache"

    def __init__(self, dtype: torch.dtype = torch.float32):
        self.dtype = dtype
        self._shadow = None
        self._shadow_of = None

    def rollout_model(self, model):
        from . import distributed  # sharded (fsdp): sampling runs on the gathered 16-bit weights, no copy

        wants_copy = self.dtype != torch.float32 and not models.is_lora(model) and \
            next(model.parameters()).dtype == torch.float32 and not distributed.is_sharded(model)
        if not wants_copy:
            return model
        if self._shadow is None or self._shadow_of is not model:
            self._shadow = copy.deepcopy(model).to(self.dtype).eval().requires_grad_(False)
            self._shadow_of = model
        return self._shadow

    def sync(self, model) -> None:
        if self._shadow is not None and self._shadow_of is model:
            with torch.no_grad():
                for dst, src in zip(self._shadow.parameters(), model.parameters()):
                    dst.copy_(src)

    def generate(self, model, prompts, *, max_new_tokens, eos_id, pad_id, temperature=1.0, top_p=1.0,
                 generator=None) -> rollout.Batch:
        model = self.rollout_model(model)
        device = next(model.parameters()).device
        with models.autocast(device, self.dtype):
            return rollout.sample(model, prompts, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id,
                                  temperature=temperature, top_p=top_p, generator=generator)


class StaticCacheEngine(KVCacheEngine):
    name = "static"

    def __init__(self, dtype: torch.dtype = torch.float32, compile: bool = False):
        super().__init__(dtype)
        self.compile = compile
        self._compiled = {}
        self._caches = {}  # (model, rows, length) -> StaticCache, reused so compiled graphs see one object

    def _cache(self, model, n: int, total: int):
        from transformers import StaticCache

        key = (id(model), n, total)
        cache = self._caches.get(key)
        if cache is None:
            if len(self._caches) >= 4:
                self._caches.pop(next(iter(self._caches)))
            cache = self._caches[key] = StaticCache(config=model.config, max_cache_len=total)
        else:
            cache.reset()
        return cache

    def _step_fn(self, model):
        def step(input_ids, attention_mask, position_ids, cache_position, cache):
            return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache_position=cache_position, past_key_values=cache, use_cache=True,
                         logits_to_keep=1).logits[:, -1, :]

        if not self.compile:
            return step
        key = id(model)
        if key not in self._compiled:
            self._compiled[key] = torch.compile(step, mode="reduce-overhead", dynamic=False)
        return self._compiled[key]

    @torch.no_grad()
    def generate(self, model, prompts, *, max_new_tokens, eos_id, pad_id, temperature=1.0, top_p=1.0,
                 generator=None) -> rollout.Batch:
        model = self.rollout_model(model)
        device = next(model.parameters()).device
        prompt_ids, prompt_mask = rollout.left_pad(prompts, pad_id, device)
        n, p = prompt_ids.shape
        total = p + max_new_tokens
        cache = self._cache(model, n, total)
        mask = torch.zeros((n, total), dtype=torch.long, device=device)
        mask[:, :p] = prompt_mask
        pos = rollout.positions(prompt_mask)
        next_pos = pos[:, -1] + 1
        out = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        check_every = 8 if device.type == "cuda" else 1
        step = self._step_fn(model)
        written = 0
        with models.autocast(device, self.dtype):
            # prefill (eager: its shape changes with the prompt length)
            logits = model(input_ids=prompt_ids, attention_mask=mask, position_ids=pos,
                           cache_position=torch.arange(p, device=device), past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1, :]
            for t in range(max_new_tokens):
                token = rollout._pick(logits, temperature, top_p, generator)
                token = torch.where(done, torch.full_like(token, pad_id), token)
                out[:, t] = token
                written = t + 1
                mask[:, p + t] = (~done).long()
                done = done | (token == eos_id)
                if t == max_new_tokens - 1 or (t % check_every == check_every - 1 and bool(done.all())):
                    break
                cache_pos = torch.full((1,), p + t, dtype=torch.long, device=device)
                logits = step(token[:, None], mask, (next_pos + t)[:, None], cache_pos, cache)
                if self.compile:
                    logits = logits.clone()  # CUDA-graph outputs are overwritten by the next replay
        completion = out[:, :written]
        if written:
            real = (completion != pad_id).any(0).nonzero()
            keep = int(real.max()) + 1 if real.numel() else 1
            completion = completion[:, :keep]
        return rollout.completion_batch(prompt_ids, prompt_mask, completion, eos_id)


class HFGenerateEngine(KVCacheEngine):
    name = "hf_generate"

    @torch.no_grad()
    def generate(self, model, prompts, *, max_new_tokens, eos_id, pad_id, temperature=1.0, top_p=1.0,
                 generator=None) -> rollout.Batch:
        model = self.rollout_model(model)
        device = next(model.parameters()).device
        prompt_ids, prompt_mask = rollout.left_pad(prompts, pad_id, device)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()) \
            if generator is not None else None
        kwargs = dict(do_sample=temperature > 0, max_new_tokens=max_new_tokens, eos_token_id=eos_id,
                      pad_token_id=pad_id)
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        devices = [device] if device.type == "cuda" else []
        rng = torch.random.fork_rng(devices=devices) if seed is not None else contextlib.nullcontext()
        with rng, models.autocast(device, self.dtype):
            if seed is not None:
                torch.manual_seed(seed)
            seq = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **kwargs)
        return rollout.completion_batch(prompt_ids, prompt_mask, seq[:, prompt_ids.shape[1]:], eos_id)


class VLLMEngine(KVCacheEngine):
    """GPU-only and untested in CI (vllm is not installed there). Runs vLLM in this process on the same GPU,
    with the policy's weights copied in after every optimizer step."""

    name = "vllm"

    def __init__(self, dtype: torch.dtype, model_path: str | None, gpu_memory_utilization: float = 0.3):
        super().__init__(dtype)
        self.rollout_model = lambda model: model  # vLLM holds its own copy
        if not model_path:
            raise ValueError("setting 'rollout_engine': vllm needs 'model' to be a Hugging Face model directory")
        import os

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # keep the engine in this process
        from vllm import LLM

        self.llm = LLM(model=model_path, dtype={torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(
            dtype, "float32"), gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True)
        self._stale = False

    def sync(self, model) -> None:
        self._stale = True

    def _load_weights(self, model) -> None:
        if models.is_lora(model):
            raise ValueError("setting 'rollout_engine': vllm with lora_r > 0 is not supported")
        runner = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner
        runner.model.load_weights(((k, v.detach()) for k, v in model.state_dict().items()))
        self.llm.reset_prefix_cache()

    @torch.no_grad()
    def generate(self, model, prompts, *, max_new_tokens, eos_id, pad_id, temperature=1.0, top_p=1.0,
                 generator=None) -> rollout.Batch:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self._stale:
            self._load_weights(model)
            self._stale = False
        device = next(model.parameters()).device
        seed = int(torch.randint(0, 2**31, (1,), generator=generator, device=generator.device).item()) \
            if generator is not None else None
        params = SamplingParams(n=1, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                stop_token_ids=[eos_id], seed=seed, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        prompt_ids, prompt_mask = rollout.left_pad(prompts, pad_id, device)
        seqs = [list(o.outputs[0].token_ids) for o in outs]
        width = max(1, max(len(s) for s in seqs))
        completion = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            completion[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        return rollout.completion_batch(prompt_ids, prompt_mask, completion.to(device), eos_id)
