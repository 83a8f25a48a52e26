"""The README's layout names every trainer module and every extension folder: adding one without a line fails."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3: section.index("```", section.index("```") + 3)]


def test_every_trainer_module_has_a_line():
    layout = _layout()
    pkg = ROOT / "trainer" / "grpo"
    missing = [p.name for p in pkg.glob("*.py") if not re.search(rf"(?<![\w/]){re.escape(p.name)}", layout)]
    missing += [f"{d.name}/" for d in pkg.iterdir() if d.is_dir() and (d / "__init__.py").exists()
                and f"{d.name}/" not in layout]
    for sub in (d for d in pkg.iterdir() if d.is_dir() and (d / "__init__.py").exists()):
        missing += [f"{sub.name}/{p.name}" for p in sub.glob("*.py") if p.name != "__init__.py" and p.name not in layout]
    assert not missing, f"README.md's layout has no line for: {', '.join(sorted(missing))}"


def test_every_extension_folder_has_a_line_and_the_layout_is_near_the_top():
    layout = _layout()
    missing = [f"{d.name}/" for d in (ROOT / "src").iterdir() if d.is_dir() and f"{d.name}/" not in layout]
    assert not missing, f"README.md's layout has no line for src/{', src/'.join(missing)}"
    text = (ROOT / "README.md").read_text()
    assert text.index("## Layout") < text.index("## Install") and len(text.splitlines()) <= 125
