"""How many threads a stage uses."""

from __future__ import annotations

import os


def thread_count(requested: int = 0) -> int:
    """``requested`` threads, or all CPUs of the machine when it is 0 (at least 1)."""
    return requested or os.cpu_count() or 1


def share_of_cpus(workers: int) -> int:
    """Threads for each of ``workers`` processes running at once: the CPUs divided among them (>= 1)."""
    return max(1, thread_count() // max(workers, 1))
