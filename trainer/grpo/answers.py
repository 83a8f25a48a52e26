"""Reading final answers out of text: one definition, used by every task, verifier and dataset reader.

Two conventions mark an answer: GSM8K's `#### 72` (the text after the last marker, to the end of that line)
and MATH's `\\boxed{…}` (the contents of the last box, braces balanced). A dataset's answer field is read by
`answer_format`; a completion is read by the verifiers (verify.py), which look for the marker first.
"""

from __future__ import annotations

import re

MARKER = "####"
FORMATS = ("auto", "gsm8k", "math", "plain")

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")  # 1,000.5 or 1000.5


def marked(text: str) -> str | None:
    """The text after the last `####` (to the end of that line), commas and a final period dropped."""
    if MARKER not in text:
        return None
    tail = text.rsplit(MARKER, 1)[1].strip().split("\n", 1)[0]
    tail = tail.replace(",", "").strip().rstrip(".").strip()
    return tail or None


def boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{…}` (or `\\fbox{…}`), braces balanced; None if there is none or it
    is not closed."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def last_number(text: str) -> str | None:
    """The last number in `text` (thousands separators allowed and dropped)."""
    nums = _NUMBER.findall(text)
    return nums[-1].replace(",", "") if nums else None


def reference(field_text: str, answer_format: str = "plain") -> str | None:
    """The answer to check against, read from a dataset's answer field by `answer_format` (gsm8k: after the
    marker; math: the last box; plain: the whole field; auto: gsm8k if the marker is there, else math if a
    box is, else plain); None when the format finds none."""
    text = field_text.strip()
    fmt = answer_format
    if fmt == "auto":
        fmt = "gsm8k" if MARKER in text else "math" if ("\\boxed" in text or "\\fbox" in text) else "plain"
    if fmt == "gsm8k":
        got = marked(text)
    elif fmt == "math":
        got = boxed(text)
    else:
        got = text
    return got or None
