"""CPU threads, chosen for the machine the process runs on.

Two facts measured on a 2-core machine (bench/results/step-profile-cpu.json names them):
- OpenMP's default wait policy spins a thread while it waits for work. When another process wants the same
  cores (a second training run, the inspector's server beside a run, a test), the spinning threads of both
  steal each other's time slices: one SFT step went from 65 ms to 3.5 s with two such processes side by side.
  A passive wait (the thread sleeps) keeps that at 147 ms, for 5–15% of a step when the machine is idle.
- torch's default thread count is the machine's cores, not the cores this process may use: a container's
  CPU quota or a `taskset` is ignored, and every extra thread only waits.

`prepare()` runs before torch is imported (the wait policy is read once, when OpenMP loads); `configure()`
after. A user's own OMP_WAIT_POLICY or OMP_NUM_THREADS is kept.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def prepare() -> None:
    """Ask OpenMP for a passive wait, unless the user chose otherwise. Call before `import torch`."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
