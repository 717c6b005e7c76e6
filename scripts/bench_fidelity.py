"""Launch ``vidpool bench fidelity`` from a checkout (same options, same exit codes).

python scripts/bench_fidelity.py --quick
python scripts/bench_fidelity.py --out results/fidelity      # the full run
"""

from __future__ import annotations

import sys

from vidpool.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "fidelity", *sys.argv[1:]]))
