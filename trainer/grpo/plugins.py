"""User code named in a setting as `module:object` (the `task`, `reward_function` and `reward_funcs` settings).

A run directory is untrusted data that people share, and its config.json names these settings, so naming is
not trusting. Before anything is imported, `locate` finds the module's file without running it (top-level
finders only; a package's `__init__` is never executed to find a submodule) and `check` refuses:
  - the standard library and built-in or frozen modules (`code:interact`, `os:system`, `sys:exit`, …);
  - this package's own modules (built-in tasks are named by name: `arith`);
  - any file inside a run directory: the one being opened, a folder that looks like a run (status.json,
    events.jsonl, or config.json beside checkpoints/) at any level above the file, or the folder the opened
    run sits in (a shared `runs/` may carry a payload next to the run it names it from).
What is left is code the user keeps: their workspace (GRPO_WORKSPACE, or the working directory from a
shell), PYTHONPATH, an installed package. The CLI logs which module it imports and from where before it does
(`describe`), and `python -m grpo user-code` prints the same without importing, for the extension to ask first.
After the import, the object must be what the setting needs (`load_object`'s `accept`) and written in Python
outside the standard library: not a builtin, nor a standard-library function re-exported by a user module.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("grpo")

# Settings that name user code as `module:object` (built-in names and file paths are not code); `reward_funcs`
# is a comma-separated list of them and built-in names.
CODE_SETTINGS = ("task", "reward_function", "reward_funcs")


class UntrustedCode(ValueError):
    """A `module:object` setting that may not be imported; the message names the setting, module and file."""


@dataclass(frozen=True)
class UserCode:
    setting: str
    spec: str
    module: str
    attr: str
    origin: str | None   # the module's file, found without importing it (None: not found)

    def as_dict(self, refused: str | None = None) -> dict[str, Any]:
        return {**asdict(self), "refused": refused}


def is_code_spec(setting: str, value: str) -> bool:
    """Whether a setting's value names code (`module:object`) rather than a built-in name or a file."""
    if setting == "task":  # built-in task names have no ':'
        return ":" in value and not Path(value).is_file()
    if setting == "reward_funcs":  # one item of the list; built-in reward names have no ':'
        return ":" in value
    return bool(value)


def _split(spec: str, setting: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"setting '{setting}' must look like 'module:object'; got {spec!r}")
    if not all(p.isidentifier() for p in module_name.split(".")) or not attr.isidentifier():
        raise ValueError(f"setting '{setting}': {spec!r} is not 'module.path:name' (Python identifiers)")
    return module_name, attr


def _find_in(name: str, locations: list[str]) -> tuple[str | None, list[str]]:
    """(file, submodule locations) of module `name` in a package's folders: a source or extension file, a
    package's `__init__`, or a namespace folder; (None, []) when absent. Reads the file system only."""
    for loc in locations:
        base = Path(loc) / name
        if base.is_dir():
            init = next((base / f"__init__{suf}" for suf in importlib.machinery.all_suffixes()
                         if (base / f"__init__{suf}").is_file()), None)
            return (str(init) if init else str(base)), [str(base)]
        for suf in importlib.machinery.all_suffixes():
            if base.with_name(name + suf).is_file():
                return str(base.with_name(name + suf)), []
    return None, []


def locate(spec: str, setting: str) -> UserCode:
    """The module `spec` names and its file, found without executing any of it: the top-level name through the
    import system's finders (which run nothing), each submodule in its package's folders (importing a dotted
    name would run the packages' `__init__` first)."""
    module_name, attr = _split(spec, setting)
    parts = module_name.split(".")
    origin: str | None = None
    try:
        found = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        found = None
    if found is not None:
        origin = found.origin
        locations = list(found.submodule_search_locations or [])
        if origin is None and locations:  # a namespace package
            origin = locations[0]
        for part in parts[1:]:
            origin, locations = _find_in(part, locations)
            if origin is None:
                break
    return UserCode(setting, spec, module_name, attr, origin)


def _stdlib_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(paths[k]).resolve() for k in ("stdlib", "platstdlib") if paths.get(k)]


def _site_dirs() -> list[Path]:
    import site

    paths = sysconfig.get_paths()
    dirs = [paths.get("purelib"), paths.get("platlib"), *getattr(site, "getsitepackages", lambda: [])()]
    user = getattr(site, "getusersitepackages", lambda: None)()
    return [Path(d).resolve() for d in [*dirs, user] if d]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _looks_like_run(d: Path) -> bool:
    try:
        return ((d / "status.json").is_file() or (d / "events.jsonl").exists()
                or ((d / "config.json").is_file() and (d / "checkpoints").is_dir()))
    except OSError:
        return False


def _stdlib_name(module_name: str) -> bool:
    top = module_name.split(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ("__main__", "builtins")


def refusal(code: UserCode, run_dir: str | Path | None = None) -> str | None:
    """Why `code` may not be imported (None: it may), in words that name the setting, module and file."""
    head = f"setting '{code.setting}' names {code.spec!r}"
    if _stdlib_name(code.module):
        return f"{head}: {code.module!r} is a standard-library module, not a task or reward function"
    if code.module.split(".")[0] == "grpo":
        return f"{head}: the trainer's own modules are not user code (a built-in task is named by its name)"
    if code.origin is None:
        return None  # not found: the import reports it with the setting's name
    if code.origin in ("built-in", "frozen") or not Path(code.origin).is_absolute():
        return f"{head}: {code.module!r} is a {code.origin} module, not user code"
    origin = Path(code.origin).resolve()
    site = _site_dirs()
    if any(_within(origin, d) for d in _stdlib_dirs()) and not any(_within(origin, d) for d in site):
        return f"{head}: {origin} is in the standard library, not a task or reward function"
    where = f"{head}, whose module {code.module!r} is {origin}"
    if run_dir is not None:
        run = Path(run_dir).resolve()
        if _within(origin, run):
            return f"{where}, inside the run directory {run}: a run directory never supplies code"
        allowed = {Path(p).resolve() for p in (os.environ.get("GRPO_WORKSPACE"), os.getcwd()) if p}
        if run.parent not in allowed and _within(origin, run.parent):
            return f"{where}, beside the run directory {run} (in {run.parent}): a run directory never supplies code"
    for d in origin.parents:
        if _looks_like_run(d):
            return f"{where}, inside the run directory {d}: a run directory never supplies code"
    return None


def check(code: UserCode, run_dir: str | Path | None = None) -> None:
    why = refusal(code, run_dir)
    if why is not None:
        raise UntrustedCode(why)


def describe(code: UserCode) -> str:
    return (f"setting '{code.setting}' names user code: importing {code.module!r} from "
            f"{code.origin or '(not found on the module path)'}")


def named_code(settings: Any) -> list[UserCode]:
    """Every `module:object` that a run's settings name, located (nothing imported)."""
    found = []
    for setting in CODE_SETTINGS:
        text = getattr(settings, setting, "") or ""
        values = [v.strip() for v in text.split(",")] if setting == "reward_funcs" else [text]
        for value in values:
            if not (value and is_code_spec(setting, value)):
                continue
            try:
                found.append(locate(value, setting))
            except ValueError:
                found.append(UserCode(setting, value, value.partition(":")[0], value.partition(":")[2], None))
    return found


def _from_stdlib(obj: Any) -> bool:
    """A builtin, or a function, class or instance whose code is the standard library's (`subprocess.run`
    re-exported by a user module is still `subprocess.run`)."""
    if inspect.isbuiltin(obj):
        return True
    target = obj if (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)) else type(obj)
    return _stdlib_name(getattr(target, "__module__", None) or "builtins")


def load_object(spec: str, setting: str, run_dir: str | Path | None = None,
                accept: Callable[[Any], bool] | None = None) -> Any:
    """The object `spec` names, imported only after `check`; a ValueError naming `setting` if it is refused,
    does not import, lacks the name, or is not what `accept` wants."""
    code = locate(spec, setting)
    check(code, run_dir)
    log.info("%s", describe(code))
    try:
        module = importlib.import_module(code.module)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - any import failure (sys.exit included) names the setting
        raise ValueError(f"setting '{setting}': cannot import {code.module!r}: {type(e).__name__}: {e}") from None
    if not hasattr(module, code.attr):
        raise ValueError(f"setting '{setting}': {code.module!r} has no {code.attr!r}")
    obj = getattr(module, code.attr)
    if _from_stdlib(obj) or (accept is not None and not accept(obj)):
        raise UntrustedCode(f"setting '{setting}': {spec} is a {type(obj).__name__}, not a "
                            f"{'task' if setting == 'task' else 'reward function'} defined in Python")
    return obj
