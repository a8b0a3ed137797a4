"""Small helpers the benchmark scripts share: output, provenance, timing."""

from __future__ import annotations

import gc
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, List


def log(msg: str = "") -> None:
    print(msg, flush=True)


def git_state() -> dict:
    """The commit the numbers belong to, and whether src/ had uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return {"commit": head or "?", "src_dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "?", "src_dirty": None}


def median(xs: List[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def fmt(x, spec: str = "{:,.0f}", none: str = "-") -> str:
    return none if x is None or (isinstance(x, float) and x != x) else spec.format(x)


def rate(loop: Callable[[], None], m: int, min_time: float) -> float:
    """Queries/s of `loop` (which answers m queries), repeated for >= min_time s with the GC paused."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        calls = 0
        t0 = time.perf_counter()
        while True:
            loop()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                return calls * m / elapsed
    finally:
        if was:
            gc.enable()


def int_list(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]
