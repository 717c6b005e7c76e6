"""Every difference between transformers versions that vidpool relies on, in one place.

Tested with transformers 5.x. The 4.x spellings kept here (``torch_dtype``, ``model.language_model``,
``*_token_index``) are the ones those releases used; they are fallbacks, not a promise.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError

__all__ = [
    "dtype_kwargs",
    "faster_gguf_loading",
    "feature_tensor",
    "language_model",
    "llava_parts",
    "token_id",
    "transformers_version",
    "video_features",
    "vision_hidden_states",
]


@functools.lru_cache(maxsize=1)
def transformers_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed transformers."""
    import transformers

    major, minor = (
        int("".join(c for c in part if c.isdigit()) or 0) for part in transformers.__version__.split(".")[:2]
    )
    return major, minor


def dtype_kwargs(dtype: torch.dtype | str | None) -> dict[str, Any]:
    """The ``from_pretrained`` keyword for a dtype: ``dtype`` since 4.56 (and in 5.x), ``torch_dtype`` before."""
    if dtype is None:
        return {}
    key = "dtype" if transformers_version() >= (4, 56) else "torch_dtype"
    return {key: dtype}


def feature_tensor(output: Any) -> torch.Tensor:
    """A feature tensor from whatever a ``get_*_features`` call returned.

    transformers 5 returns a ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds the projected
    features; 4.x returned the tensor (or a list/tuple of tensors) itself.
    """
    if torch.is_tensor(output):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        output = pooled
    if isinstance(output, (list, tuple)):
        return torch.cat(list(output), dim=0)
    if torch.is_tensor(output):
        return output
    raise TypeError(f"cannot find a feature tensor in {type(output).__name__}")


def video_features(
    model: Any, pixel_values: torch.Tensor, suffix: torch.Tensor | None = None
) -> torch.Tensor:
    """A LLaVA-family model's own visual tokens for a batch of videos, ``[B, N, C]``, as its forward
    splices them into the prompt.

    Args:
        model: a transformers LLaVA-family model (or its inner ``model``).
        pixel_values: ``[B, T, 3, S, S]`` preprocessed frames.
        suffix: ``[C]`` or ``[k, C]`` tokens the forward puts after each video's features (OneVision's
            ``image_newline``), or ``None``.

    ``get_video_features`` changed within 5.x: its argument is ``pixel_values`` before 5.18 and
    ``pixel_values_videos`` since, so it is passed by position; LLaVA-NeXT-Video returned one
    ``[T, tokens, C]`` tensor per video before 5.21; the ``suffix`` is in its output since 5.18 and was
    added by the forward before, so it is appended here for those releases.
    """
    output = llava_parts(model).get_video_features(pixel_values)
    features = getattr(output, "pooler_output", output)
    if isinstance(features, (list, tuple)):
        features = torch.stack([per_video.flatten(0, 1) for per_video in features])
    if suffix is not None and transformers_version() < (5, 18):
        tail = suffix.to(features).reshape(1, -1, features.shape[-1]).expand(features.shape[0], -1, -1)
        features = torch.cat((features, tail), dim=1)
    return features


def llava_parts(model: Any) -> Any:
    """The module holding ``vision_tower`` / ``multi_modal_projector`` / ``language_model``.

    transformers >= 4.52 (and 5.x) nest them under ``model.model``; earlier releases kept them on the
    top-level ``ForConditionalGeneration`` module.
    """
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "vision_tower"):
        return inner
    return model


def language_model(model: Any) -> Any:
    """The decoder of a LLaVA-family model (``model.model.language_model`` in 5.x)."""
    return llava_parts(model).language_model


def token_id(config: Any, kind: str) -> int:
    """The placeholder token id for ``kind`` ``"video"`` or ``"image"`` (``*_token_id`` in 5.x, ``*_token_index`` in 4.x)."""
    for name in (f"{kind}_token_id", f"{kind}_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise AttributeError(f"{type(config).__name__} has no {kind} token id")


class _Collected(Exception):
    """Raised by a forward hook once every requested hidden state is in hand: the rest of the tower
    (deeper blocks, the post-norm, SigLIP's pooling head) never runs."""


def _encoder_layers(vision_tower: Any) -> Any:
    model = getattr(vision_tower, "vision_model", vision_tower)
    return getattr(getattr(model, "encoder", None), "layers", None)


def vision_hidden_states(
    vision_tower: Any, pixel_values: torch.Tensor, layers: list[int] | None = None
) -> tuple[torch.Tensor, ...]:
    """Hidden states of a CLIP/SigLIP vision tower, each ``[B, L, C]``, numbered as Hugging Face's
    ``hidden_states`` (0: the embeddings, ``k``: block ``k``'s output, negative from the end).

    With ``layers``, only those states are returned (in that order) and only the blocks up to the
    deepest one run, so memory holds one block's work instead of every state (forward hooks catch the
    outputs, then stop the forward). Without, all of them, as ``output_hidden_states=True`` gives.
    """
    blocks = _encoder_layers(vision_tower)
    if layers is None or blocks is None or len(blocks) == 0:
        out = vision_tower(pixel_values, output_hidden_states=True, return_dict=True)
        states = getattr(out, "hidden_states", None)
        if states is None:
            raise TypeError(f"{type(vision_tower).__name__} returned no hidden states")
        states = tuple(states)
        return states if layers is None else tuple(states[i] for i in layers)
    count = len(blocks) + 1
    if not layers or any(not -count <= int(i) < count for i in layers):
        raise InvalidArgumentError(
            f"vision feature layers must be between {-count} and {count - 1} for this {count - 1}-block "
            f"tower, got {list(layers)}"
        )
    wanted = [int(i) % count for i in layers]
    deepest = max(wanted)
    found: dict[int, torch.Tensor] = {}
    owner = threading.get_ident()  # hooks sit on a shared module: ignore other threads' forwards

    def keep(index: int, value: Any) -> None:
        if threading.get_ident() != owner:
            return
        found[index] = value[0] if isinstance(value, (tuple, list)) else value
        if index == deepest:
            raise _Collected

    handles = []
    for index in set(wanted):
        if index == 0:  # the input of the first block
            handles.append(
                blocks[0].register_forward_pre_hook(
                    lambda _m, args, kwargs: keep(0, args[0] if args else kwargs["hidden_states"]),
                    with_kwargs=True,
                )
            )
        else:
            handles.append(
                blocks[index - 1].register_forward_hook(lambda _m, _a, out, index=index: keep(index, out))
            )
    try:
        vision_tower(pixel_values, output_hidden_states=False, output_attentions=False)
    except _Collected:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if len(found) < len(set(wanted)):
        raise TypeError(
            f"{type(vision_tower).__name__} finished without running blocks {sorted(set(wanted) - set(found))}; "
            "its forward does not go through its encoder layers as CLIP and SigLIP towers do"
        )
    return tuple(found[i] for i in wanted)


@contextlib.contextmanager
def faster_gguf_loading() -> Iterator[None]:
    """Memoise ``gguf.get_tensor_name_map`` while a GGUF checkpoint loads.

    transformers (5.x) rebuilds the same read-only name map once per module while matching GGUF tensor
    names, which dominates load time for small models; the map depends only on its arguments.
    """
    try:
        import gguf
    except ImportError:
        yield
        return
    original = getattr(gguf, "get_tensor_name_map", None)
    if original is None:
        yield
        return
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original
