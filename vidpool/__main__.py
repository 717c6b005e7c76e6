"""``python -m vidpool``: the ``vidpool`` command (and what ``torchrun -m vidpool`` starts)."""

import sys

from vidpool.cli import main

if __name__ == "__main__":  # importing the module (pkgutil walks, docs tools) runs nothing
    sys.exit(main())
