"""The one error family users see.

Every error a user can cause derives from :class:`VidpoolError` and says what to do about it.
Subclasses also derive from the matching builtin (``ValueError``, ``FileNotFoundError`` ...) so that
generic ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "CheckpointError",
    "ContextLengthError",
    "DecodeTimeoutError",
    "EncoderError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "OutOfMemoryError",
    "UnknownMethodError",
    "VideoDecodeError",
    "VideoError",
    "VideoNotFoundError",
    "VidpoolError",
]


class VidpoolError(Exception):
    """Base class of every error vidpool raises on purpose."""


class InvalidArgumentError(VidpoolError, ValueError):
    """An argument has the wrong shape, type or value."""


class ContextLengthError(InvalidArgumentError):
    """A request whose visual tokens, prompt and answer do not fit in the LM's context window.

    ``needed`` positions were asked for; the LM has ``context_length``.
    """

    def __init__(self, message: str, needed: int = 0, context_length: int = 0):
        super().__init__(message)
        self.needed = needed
        self.context_length = context_length


class UnknownMethodError(VidpoolError, ValueError):
    """A compression method name that is not registered."""


class BudgetError(VidpoolError, ValueError):
    """A token budget that no output of the method can meet.

    ``min_budget`` is the smallest budget the method accepts for that input (``None`` if none would do).
    """

    def __init__(self, message: str, min_budget: int | None = None):
        super().__init__(message)
        self.min_budget = min_budget


class MissingDependencyError(VidpoolError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


class VideoError(VidpoolError):
    """A video that cannot be read as asked."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video path does not exist or is not a file."""


class VideoDecodeError(VideoError):
    """The file exists but no usable frames could be decoded from it."""


class DecodeTimeoutError(VideoError, TimeoutError):
    """Decoding took longer than its timeout (a damaged file or a decoder stuck on it)."""


class EncoderError(VidpoolError):
    """The vision or text encoder could not be built, loaded or run."""


class CheckpointError(VidpoolError):
    """A model checkpoint is missing, incomplete or unsafe to load as asked."""


class OutOfMemoryError(VidpoolError, MemoryError):
    """The device ran out of memory even after backing off; the message says what was tried."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package: pip install 'vidpool[{extra}]'"
        ) from exc
