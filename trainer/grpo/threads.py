"""CPU threads, chosen for the machine the process runs on.

Measured on this project's 2-core machine, one SFT step of the default (docs/performance.md):
- OpenMP's default wait spins a waiting thread for a long while. When another process wants the same cores (a
  second run, the inspector's server beside a run, a test), the spinning threads of both steal each other's
  time slices: two such processes side by side took 3.5 s a step instead of 70 ms (a plain busy loop beside
  one: 234 ms). A passive wait (the thread sleeps at once) keeps that at 146 ms, but costs 5-15% on an idle
  machine, where a step is a few hundred short parallel regions. A short spin (GOMP_SPINCOUNT=1000, about a
  microsecond) costs nothing measurable when idle and gives 170 ms side by side (158 ms beside a busy loop).
- torch's default thread count is the machine's cores, not the cores this process may use: a container's
  CPU quota or a `taskset` is ignored, and every extra thread only waits.

`prepare()` runs before torch is imported (OpenMP reads its settings once, when it loads); `configure()`
after. A user's own OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME or OMP_NUM_THREADS is kept.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


SPIN = {"GOMP_SPINCOUNT": "1000",  # GNU OpenMP (torch's Linux wheels): spin iterations before sleeping
        "KMP_BLOCKTIME": "1"}        # LLVM/Intel OpenMP (macOS wheels): milliseconds before sleeping


def prepare() -> None:
    """Ask OpenMP for a short spin before a waiting thread sleeps, unless the user chose a wait policy. Call
    before `import torch`."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    for key, value in SPIN.items():
        os.environ.setdefault(key, value)


def describe() -> str:
    """The wait settings in force, for the log."""
    keys = ("OMP_WAIT_POLICY", *SPIN, "OMP_NUM_THREADS")
    return ", ".join(f"{k}={os.environ[k]}" for k in keys if k in os.environ) or "OpenMP defaults"


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), or
    None when there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup's CPU quota (rounded up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def configure() -> int:
    """Set torch's intra-op threads to the usable cores (split between the processes torchrun started on this
    machine, LOCAL_WORLD_SIZE), unless OMP_NUM_THREADS says how many. Returns the count."""
    import torch

    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return torch.get_num_threads()
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    n = max(1, usable_cores() // max(1, int(local) if local.isdigit() else 1))
    torch.set_num_threads(n)
    return n
