"""Reward components: each `reward_funcs` function's per-step statistics (TRL's metric names) and the
divergence flag, the sign of reward hacking when one component climbs while another falls.

Pure functions of numbers: the loop, the TRL bridge and tests call them; the extension computes the same flag
from metrics.jsonl's `rewards/<name>/mean` columns.

**Divergence**, precisely. For each component take its last `window` logged values (`rewards/<name>/mean`
per metrics row; null/NaN values are skipped) and fit a least-squares line against the row's position
(0, 1, …). Its slope b has standard error se = sqrt(Σ residual² / (n − 2) / Σ (x − x̄)²), and t = b / se
says how far the trend stands out of the component's own step-to-step noise. A component *rises* when
t > `t_min` and *falls* when t < −`t_min` (an exact line, se = 0, has t = ±∞ when b ≠ 0). The components
*diverge* when at least one rises while at least one falls. Fewer than `min_points` values (default 5) say
nothing. With `t_min` = 3 and window 20 (18 degrees of freedom) a trendless component with independent noise
passes |t| > 3 in under 1% of windows, and a false flag needs two components to do so in opposite directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

PREFIX = "rewards/"  # TRL's per-function metric names: rewards/<name>/mean and rewards/<name>/std


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def nanmean(values: Sequence[float | None]) -> float:
    xs = [v for v in values if _finite(v)]
    return sum(xs) / len(xs) if xs else math.nan


def nanstd(values: Sequence[float | None]) -> float:
    """Sample (Bessel-corrected) std of the values that are numbers; NaN for fewer than two (TRL's nanstd)."""
    xs = [v for v in values if _finite(v)]
    if len(xs) < 2:
        return math.nan
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def step_metrics(components: Mapping[str, Sequence[float | None]],
                 logged: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """A step's metrics columns for its reward functions: `rewards/<name>/mean` and `/std` over the completions
    the function scored (None: it did not apply), as TRL logs them; and the mean of each value the functions
    gave `log_metric` under its own name."""
    out: dict[str, float] = {}
    for name, values in components.items():
        out[f"{PREFIX}{name}/mean"] = nanmean(values)
        out[f"{PREFIX}{name}/std"] = nanstd(values)
    for name, values in (logged or {}).items():
        out[name] = nanmean(values)
    return out


@dataclass
class Trend:
    slope: float   # per logged step
    t: float       # slope / its standard error
    n: int         # values in the window


@dataclass
class Divergence:
    diverging: bool
    rising: list[str] = field(default_factory=list)
    falling: list[str] = field(default_factory=list)
    trends: dict[str, Trend] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.diverging:
            return "no divergence"
        return f"{', '.join(self.rising)} rising while {', '.join(self.falling)} falling"


def trend(values: Sequence[float | None]) -> Trend | None:
    """The least-squares slope of `values` against their position and its t statistic (None: under 3 numbers)."""
    pts = [(float(i), float(v)) for i, v in enumerate(values) if _finite(v)]
    n = len(pts)
    if n < 3:
        return None
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - b * mx
    ssr = sum((y - a - b * x) ** 2 for x, y in pts)
    se = math.sqrt(ssr / (n - 2) / sxx)
    scale = max(1.0, max(abs(y) for _, y in pts))
    if se <= 1e-12 * scale:  # an exact line: its trend is certain
        t = 0.0 if abs(b) <= 1e-12 * scale else math.copysign(math.inf, b)
    else:
        t = b / se
    return Trend(b, t, n)


def divergence(series_by_component: Mapping[str, Sequence[float | None]], window: int = 20, t_min: float = 3.0,
               min_points: int = 5) -> Divergence:
    """Whether one component rises while another falls over the last `window` logged values of each (see the
    module's docstring for the exact rule)."""
    if window < 3:
        raise ValueError(f"window must be at least 3 logged steps; got {window}")
    out = Divergence(False)
    for name, values in series_by_component.items():
        tr = trend(list(values)[-window:])
        if tr is None or tr.n < min_points:
            continue
        out.trends[name] = tr
        if tr.t > t_min:
            out.rising.append(name)
        elif tr.t < -t_min:
            out.falling.append(name)
    out.diverging = bool(out.rising and out.falling)
    return out


def series_from_rows(rows: Sequence[Mapping[str, object]]) -> dict[str, list[float | None]]:
    """Each component's `rewards/<name>/mean` per metrics row (None where a row lacks it), in row order."""
    names = list(dict.fromkeys(k[len(PREFIX):-len("/mean")] for r in rows for k in r
                               if k.startswith(PREFIX) and k.endswith("/mean")))
    return {n: [r.get(f"{PREFIX}{n}/mean") for r in rows] for n in names}  # type: ignore[misc]
