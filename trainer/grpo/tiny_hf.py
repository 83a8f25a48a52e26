"""Tiny random-weight checkpoints of real Hugging Face architectures (Qwen2, Llama), built locally.

Tests and the benchmark's `--smoke` mode need what users bring — a model directory with `config.json`,
weights, a byte-level BPE tokenizer and a chat template — without downloading anything. The tokenizer is
trained here on a small corpus with the `tokenizers` library; the chat template is ChatML
(`<|im_start|>role … <|im_end|>`), the convention Qwen2 chat models use.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = [
    "What is 12 plus 30? Let's think step by step. 12 + 30 = 42. #### 42",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "The answer is \\boxed{\\frac{1}{2}}. So x = 3/4 and y = -7.5, the total is 1,000 dollars.",
    "Solve for x: 2x + 3 = 11. Subtract 3 from both sides, then divide by 2: x = 4.",
    "0123456789 + - * / = ( ) [ ] { } ^ _ \\sqrt \\pi \\cdot \\times % $ # @ ! ? , . ; : ' \"",
]
SHAPES = {
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  tie_word_embeddings=True),
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  tie_word_embeddings=False),
}


def bpe_tokenizer(vocab_size: int = 400, pad_to: int | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (every string encodes, newlines included) with ChatML special tokens.
    `pad_to`: fill the vocabulary up to that many tokens with tokens no merge produces (as real checkpoints
    carry unused ids), for a full-size vocabulary (Qwen2's 151,936) on a tiny corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    if pad_to is not None and pad_to > tok.get_vocab_size():
        tok = _padded(tok, pad_to)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left", model_max_length=512)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _padded(tok: Tokenizer, total: int) -> Tokenizer:
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    n = 0
    while len(vocab) < total:
        word = "".join(alphabet[(n // 256 ** k) % 256] for k in range(3))
        n += 1
        if word not in vocab:
            vocab[word] = len(vocab)
    return Tokenizer.from_str(json.dumps(spec))


def write_checkpoint(path: str | Path, arch: str = "qwen2", seed: int = 0, vocab_size: int | None = None,
                     **shape) -> Path:
    """Write a random-weight `arch` checkpoint (config, safetensors, tokenizer, chat template) to `path`;
    `vocab_size` pads the tokenizer (and the embeddings) to that many tokens."""
    if arch not in SHAPES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(SHAPES)}")
    path = Path(path)
    tok = bpe_tokenizer(pad_to=vocab_size)
    fields = {**SHAPES[arch], **shape}
    model_type = fields.pop("model_type")
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, bos_token_id=None, **fields)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
