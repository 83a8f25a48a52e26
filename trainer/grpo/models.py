"""Models and tokenizers: the built-in tiny model, local Hugging Face directories, checkpoints.

The built-in model is a tiny configuration of a standard transformers architecture (Llama) with a
character-level tokenizer built with the `tokenizers` library and wrapped as a `PreTrainedTokenizerFast`,
so it saves and loads with `AutoModelForCausalLM` / `AutoTokenizer` like any real checkpoint, and peers
(TRL) can train the very same model. Nothing is downloaded.
"""

from __future__ import annotations

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


def load(spec: str, seed: int, device: torch.device) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """`builtin:tiny` (fresh, seeded) or a local model directory (a checkpoint's or any HF model's)."""
    if spec == BUILTIN:
        tok = char_tokenizer()
        model = tiny_model(tok, seed)
    else:
        path = Path(spec)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"setting 'model': {spec} is not a model directory (no config.json)")
        tok = AutoTokenizer.from_pretrained(path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return model.to(device), tok


def check_vocabulary(tokenizer, text: str) -> None:
    """Raise ValueError naming the characters the tokenizer cannot represent (it would map them to <unk>)."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if unk in ids:
        bad = sorted({ch for ch in text if tokenizer(ch, add_special_tokens=False)["input_ids"] == [unk]})
        raise ValueError(f"characters outside the model's vocabulary: {''.join(bad)!r}")
