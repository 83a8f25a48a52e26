"""How a question becomes the prompt text the model continues.

The task words the question (`Task.prompt`); this module frames it. Without a chat template the prompt is
those words and a newline (the built-in model's format). A chat model is prompted the way it was tuned: its
tokenizer's chat template over an optional system message and the task's words as the user's turn, ending
with the assistant's header (`add_generation_prompt`). The template writes any special tokens itself, so
prompts are encoded with `add_special_tokens=False`.
"""

from __future__ import annotations

from typing import Callable

from .tasks import Task


def plain(text: str) -> str:
    """The frame without a chat template: the text and a newline."""
    return text + "\n"


def uses_chat_template(tokenizer, setting: str) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if setting == "on" and not has:
        raise ValueError("setting 'chat_template' is on but the model's tokenizer has no chat template")
    return has if setting == "auto" else setting == "on"


def messages(question: str, system_prompt: str = "", task: Task | None = None) -> list[dict]:
    """The chat messages a question is asked in under a chat template (TRL's conversational prompt)."""
    words = task.prompt if task is not None else (lambda q: q)
    out = [{"role": "system", "content": system_prompt}] if system_prompt else []
    out.append({"role": "user", "content": words(question)})
    return out


def formatter(tokenizer, setting: str = "off", system_prompt: str = "", task: Task | None = None
              ) -> Callable[[str], str]:
    """A function question -> prompt text."""
    words = task.prompt if task is not None else (lambda q: q)
    if not uses_chat_template(tokenizer, setting):
        return lambda question: plain(words(question))

    def chat(question: str) -> str:
        return tokenizer.apply_chat_template(messages(question, system_prompt, task), tokenize=False,
                                             add_generation_prompt=True)

    return chat

