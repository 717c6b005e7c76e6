"""``python -m vidpool``: the ``vidpool`` command (and what ``torchrun -m vidpool`` starts)."""

import sys

from vidpool.cli import main

sys.exit(main())
