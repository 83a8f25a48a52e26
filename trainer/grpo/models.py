"""Models and tokenizers: the built-in tiny model, local Hugging Face directories, checkpoints.

The built-in model is a tiny configuration of a standard transformers architecture (Llama) with a
character-level tokenizer built with the `tokenizers` library and wrapped as a `PreTrainedTokenizerFast`,
so it saves and loads with `AutoModelForCausalLM` / `AutoTokenizer` like any real checkpoint, and peers
(TRL) can train the very same model. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, LlamaConfig

BUILTIN = "builtin:tiny"
SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
# Everything the arith task writes, plus what a person is likely to type around it.
CHARACTERS = list("0123456789+-*/()=#\n ") + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:?!'\"")

# RoPE has no learned positions, so the context length is metadata: 1024 lets a 1,000-character document
# be scored whole.
CONTEXT = 1024
TINY_CONFIG = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=CONTEXT, rope_theta=10000.0,
                   tie_word_embeddings=True, attention_dropout=0.0, attention_bias=False, mlp_bias=False)


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", padding_side="left", model_max_length=CONTEXT)


def tiny_model(tokenizer: PreTrainedTokenizerFast, seed: int) -> torch.nn.Module:
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **TINY_CONFIG)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


@dataclass
class Options:
    """How a model is loaded and trained (the settings dtype, attn_implementation, gradient_checkpointing and
    lora_*; see config.py). The defaults are the built-in model's: float32, SDPA, no LoRA."""

    dtype: str = "auto"
    attn_implementation: str = "auto"
    gradient_checkpointing: bool = False
    lora_r: int = 0
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"

    @classmethod
    def from_config(cls, cfg) -> "Options":
        return cls(**{f: getattr(cfg, f) for f in cls.__dataclass_fields__})


def compute_dtype(setting: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a CUDA device that supports it, else float32."""
    if setting == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[setting]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for forward passes: trainable weights stay float32 (AdamW needs the precision), matmuls
    run in `dtype`. A no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def attention_kernel(setting: str, device: torch.device, dtype: torch.dtype) -> str:
    if setting != "auto":
        return setting
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16) and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def load(spec: str, seed: int, device: torch.device, options: Options | None = None, *,
         safetensors_only: bool = False) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """`builtin:tiny` (fresh, seeded), a local Hugging Face model directory (a checkpoint's or any HF
    model's), or a LoRA checkpoint (adapter files + tokenizer; the base named in adapter_config.json).

    Full training keeps float32 weights (mixed precision comes from `autocast`); with LoRA the frozen base is
    stored in the compute dtype and the adapters in float32. `safetensors_only`: a run directory's checkpoint,
    whose weights are read from safetensors files only (never a pickled pytorch_model.bin)."""
    opts = options or Options()
    dtype = compute_dtype(opts.dtype, device)
    attn = attention_kernel(opts.attn_implementation, device, dtype)
    if spec == BUILTIN:
        tok = char_tokenizer()
        model = tiny_model(tok, seed)
    else:
        path = Path(spec)
        adapter = is_adapter_dir(path)
        if not (path / "config.json").is_file() and not adapter:
            raise FileNotFoundError(f"setting 'model': {spec} is not a model directory (no config.json)")
        tok = AutoTokenizer.from_pretrained(path, padding_side="left")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if adapter:
            model = _load_adapter_checkpoint(path, opts, dtype, attn)
        else:
            base_dtype = dtype if opts.lora_r else torch.float32
            if safetensors_only and not any(path.glob("*.safetensors")):
                raise ValueError(f"{path}: refused: no model.safetensors (a run directory's weights are read from "
                                 "safetensors files only, never from a pickle such as pytorch_model.bin)")
            model = AutoModelForCausalLM.from_pretrained(path.resolve(), attn_implementation=attn, dtype=base_dtype,
                                                         **({"use_safetensors": True} if safetensors_only else {}))
            if opts.lora_r:
                model = _add_lora(model, opts)
    if opts.gradient_checkpointing:
        base = model.get_base_model() if is_lora(model) else model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.to(device), tok


def _add_lora(model, opts: Options):
    from peft import LoraConfig, get_peft_model

    targets = opts.lora_target_modules.strip()
    target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    cfg = LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                     target_modules=target_modules, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, cfg)
    except ValueError as e:  # peft names the modules it could not find
        raise ValueError(f"setting 'lora_target_modules': {e}") from None


def _load_adapter_checkpoint(path: Path, opts: Options, dtype: torch.dtype, attn: str):
    from peft import PeftModel

    base_path = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_path or not (Path(base_path) / "config.json").is_file():
        raise FileNotFoundError(f"{path} is a LoRA checkpoint whose base model {base_path!r} is not a local model "
                                "directory (it must stay where the run found it)")
    base = AutoModelForCausalLM.from_pretrained(base_path, attn_implementation=attn, dtype=dtype)
    return PeftModel.from_pretrained(base, path, is_trainable=True)


def check_vocabulary(tokenizer, text: str) -> None:
    """Raise ValueError naming the characters the tokenizer cannot represent (it would map them to <unk>)."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if unk in ids:
        bad = sorted({ch for ch in text if tokenizer(ch, add_special_tokens=False)["input_ids"] == [unk]})
        raise ValueError(f"characters outside the model's vocabulary: {''.join(bad)!r}")
