"""Silence third-party progress bars for a while, then put everything back as it was.

Loading a model prints tqdm bars from transformers (weight loading, GGUF de-quantisation) and
huggingface_hub; on a terminal they interleave with a streamed answer. ``quiet_libraries()`` turns
them off inside a ``with`` block and restores the environment variables and library switches it
touched on the way out, so a program that calls ``vidpool.cli.main`` keeps its own settings.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

__all__ = ["quiet_libraries"]

# TQDM_DISABLE is read when tqdm is first imported (its envwrap decorator); HF_HUB_... by huggingface_hub.
_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
# transformers builds this bar with tqdm.auto directly, so neither its own switch nor the environment
# (once tqdm is imported) reaches it: the module's name for tqdm is swapped for a disabled one.
_DIRECT_TQDM_MODULES = ("transformers.modeling_gguf_pytorch_utils",)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextmanager
def _transformers_bars() -> Iterator[None]:
    import transformers.utils.logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        # huggingface_hub warns when the user's HF_HUB_DISABLE_PROGRESS_BARS=0 outranks the call
        warnings.simplefilter("ignore")
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def _direct_tqdm(module_name: str) -> Iterator[None]:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:  # gguf support or the module itself is absent: there is no bar to silence
        yield
        return
    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Turn off transformers' and huggingface_hub's progress bars inside the block; restore them after.

    transformers is imported here only when it is installed (it is what prints the bars).
    """
    with ExitStack() as stack:
        stack.enter_context(_environment(_ENV))
        if "transformers" in sys.modules or _installed("transformers"):
            stack.enter_context(_transformers_bars())
            for name in _DIRECT_TQDM_MODULES:
                stack.enter_context(_direct_tqdm(name))
        yield


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
