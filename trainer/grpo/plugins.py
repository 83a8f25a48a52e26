"""User code named in a setting as `module:object` (the `task` and `reward_function` settings)."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(spec: str, setting: str) -> Any:
    """The object `spec` names; a ValueError naming `setting` if the module does not import or lacks it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"setting '{setting}' must look like 'module:object'; got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - any import failure (sys.exit included) names the setting
        raise ValueError(f"setting '{setting}': cannot import {module_name!r}: {type(e).__name__}: {e}") from None
    if not hasattr(module, attr):
        raise ValueError(f"setting '{setting}': {module_name!r} has no {attr!r}")
    return getattr(module, attr)
