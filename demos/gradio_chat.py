"""The Gradio chat demo, for people who cloned the repository: ``python demos/gradio_chat.py [options]``.

The app lives in the package (``vidpool.demo``); this file only starts it, with the options of
``vidpool demo`` (``python demos/gradio_chat.py --help``).
"""

from __future__ import annotations

import sys

from vidpool.cli import main

if __name__ == "__main__":
    # decoding runs in child processes that re-import this file: keep the start behind this guard
    sys.exit(main(["demo", *sys.argv[1:]]))
