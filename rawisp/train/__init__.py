"""Training of the LW-ISP model (needs the ``train`` extra: torch).

Only produces ONNX files plus their model cards; the runtime never imports this package.
"""

import os

# OpenMP threads that wait for work sleep instead of spinning (set before torch loads its OpenMP
# runtime, which reads it once). Spinning is free on an idle machine, but on a busy one it turned
# a 2-thread CPU step from 1.0 into 1.85 CPU-seconds, and --cpu-budget (process time) paid for it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
