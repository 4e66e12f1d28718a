"""The thread cliff, measured side by side: processes x threads x OpenMP wait policy.

Runs P torch processes at once, each doing the same small convolutions (the
shape of a detector's later layers), under:

- ``ACTIVE``: OpenMP threads spin after each parallel region (GNU OpenMP's
  behaviour without a policy, which is what torch gets unless told otherwise);
- ``PASSIVE``: threads sleep when idle (sonorisk's default, sonorisk/threads.py);
- one thread per process (the size ``sonorisk batch`` picks when workers fill the cores).

Prints wall seconds for each and the ratios against sonorisk's default.

    python benchmarks/threads.py [--processes 2] [--threads 2] [--iters 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from sonorisk.threads import cpu_count

WORK = """
import time, torch
torch.set_num_threads({threads})
x = torch.randn(1, 32, 40, 40)
conv = torch.nn.Conv2d(32, 32, 3, padding=1)
with torch.inference_mode():
    for _ in range(20):
        conv(x)
    t = time.perf_counter()
    for _ in range({iters}):
        conv(x)
print(time.perf_counter() - t)
"""


def run(processes: int, threads: int, policy: str, iters: int) -> float:
    """Wall seconds until all ``processes`` finish (started together)."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    code = WORK.format(threads=threads, iters=iters)
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode != 0:
            raise SystemExit(f"a benchmark process failed ({policy}, {threads} threads)")
        float(out.strip())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads per process")
    parser.add_argument("--iters", type=int, default=1000)
    args = parser.parse_args()
    cpus = cpu_count()
    p, t = args.processes, args.threads
    rows = [
        (f"{p} processes x {t} threads, ACTIVE (spinning)", run(p, t, "ACTIVE", args.iters)),
        (f"{p} processes x {t} threads, PASSIVE (sonorisk)", run(p, t, "PASSIVE", args.iters)),
        (f"{p} processes x 1 thread, PASSIVE", run(p, 1, "PASSIVE", args.iters)),
    ]
    print(f"usable CPUs: {cpus}; {args.iters} convolutions (32x40x40) per process")
    base = rows[1][1]
    print(f"{'setting':48s} {'wall s':>8s} {'/ sonorisk':>11s}")
    for name, seconds in rows:
        print(f"{name:48s} {seconds:8.2f} {seconds / base:11.2f}")
    if p * t > cpus:
        print(f"({p * t} threads on {cpus} CPUs: the spinning row is the cliff)")


if __name__ == "__main__":
    main()
