"""The `chariotd-sim` command's entry point: one line naming the extra to install when
the simulator's dependencies are missing (a device package installs without them),
before anything that needs them is imported."""

from __future__ import annotations

import sys

from chariotd.kernel.extras import missing


def main() -> int:
    problem = missing("sim")
    if problem:
        sys.stderr.write(f"chariotd-sim: {problem}\n")
        return 1
    from chariotd.sim.main import main as sim_main
    return sim_main()
