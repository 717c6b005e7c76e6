"""The ``vidpool`` model of lmms-eval: any vidpool checkpoint, any compression method and budget.

    lmms-eval --model vidpool \\
        --model_args model=/path/to/checkpoint,method=prompt_guided,budget=256,frames=16,device=cpu \\
        --tasks vidpool_synth --include_path DIR --batch_size 1 --output_path results/

The chat class (:class:`VidpoolLMM`) runs lmms-eval's ``doc_to_messages`` tasks; the simple class
(:class:`VidpoolSimpleLMM`, chosen by ``--force_simple``) runs ``doc_to_visual`` tasks, including
``multiple_choice`` and ``loglikelihood`` ones, which lmms-eval 0.7 sends to simple models only.
Each request is one :class:`vidpool.VideoChat`: planned, encoded (features shared through one
:class:`vidpool.encode.FeatureCache`, so several questions about a video encode it once), compressed
and answered, one request at a time. ``fastv=2:64`` (read as the ``--fastv`` option of the ``vidpool``
command reads it) also prunes inside the LM while it generates.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from vidpool.errors import InvalidArgumentError
from vidpool.integrations.lmms_eval.requests import (
    Turn,
    generation_options,
    turn_from_messages,
    turn_from_visuals,
)
from vidpool.options import FastV, check_device, check_planning, default_device, fastv_option

log = logging.getLogger(__name__)

__all__ = ["MODEL_ARGS", "ModelArgs", "VidpoolLMM", "VidpoolSimpleLMM", "parse_model_args", "resolve_model"]

#: the ``--model_args`` keys vidpool reads (``batch_size``, ``max_batch_size`` and ``device`` also come
#: from lmms-eval's own ``--batch_size`` and ``--device``)
MODEL_ARGS = (
    "model",
    "method",
    "budget",
    "frames",
    "device",
    "memory",
    "fastv",
    "batch_size",
    "max_batch_size",
)
# more rounds than any multi-round task asks means its doc_to_messages never says it is done
_MAX_ROUNDS = 64


@dataclass(frozen=True)
class ModelArgs:
    """Checked ``--model_args``: ``None`` leaves the choice to the checkpoint (or, for ``model``, the
    default model); ``device`` is resolved (:func:`vidpool.options.default_device` when not given)."""

    model: str | None = None
    method: str | None = None
    budget: int | None = None
    frames: int | None = None
    device: str = field(default_factory=default_device)
    memory: int | None = None
    fastv: FastV | None = None


def _as_int(name: str, value: Any) -> Any:
    # lmms-eval reads "16" as 16 but "16.0" as a float; a whole float is the number meant
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def _batch_size(value: Any) -> None:
    # lmms-eval passes --batch_size as text ("1", "auto", "auto:4"); requests run one at a time anyway
    text = str(value).strip()
    if text.startswith("auto"):
        return
    try:
        size = int(float(text))
    except ValueError:
        raise InvalidArgumentError(
            f"batch_size must be a positive integer or 'auto', got {value!r}"
        ) from None
    if size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer or 'auto', got {value!r}")
    if size > 1:
        log.warning("vidpool answers one request at a time; batch_size=%d runs as batch size 1", size)


def parse_model_args(**kwargs: Any) -> ModelArgs:
    """Check lmms-eval's ``--model_args`` (already split into keywords) before anything loads.

    Raises:
        InvalidArgumentError: an unknown key, or a value no run can take (the message names the key).
        UnknownMethodError: a method ``vidpool.list_methods()`` does not list.
    """
    unknown = sorted(set(kwargs) - set(MODEL_ARGS))
    if unknown:
        raise InvalidArgumentError(
            f"unknown vidpool model_args {unknown}; use {', '.join(MODEL_ARGS[:-2])} "
            "(e.g. model=PATH,method=prompt_guided,budget=256,frames=16,device=cpu)"
        )
    budget = _as_int("budget", kwargs.get("budget"))
    frames = _as_int("frames", kwargs.get("frames"))
    method = kwargs.get("method")
    if method is not None:
        method = str(method)
    check_planning(num_frames=frames, budget=budget, method=method)
    device = kwargs.get("device")
    device = check_device(str(device) if device is not None else default_device())
    memory = kwargs.get("memory")
    if memory is not None:
        from vidpool.schedule.device import parse_bytes

        memory = parse_bytes(memory)
    fastv = kwargs.get("fastv")
    if fastv is not None:
        try:
            fastv = fastv_option(str(fastv))
        except argparse.ArgumentTypeError as exc:
            raise InvalidArgumentError(f"fastv: {exc}") from None
    if kwargs.get("batch_size") is not None:
        _batch_size(kwargs["batch_size"])
    model = kwargs.get("model")
    return ModelArgs(
        model=None if model is None else str(model),
        method=method,
        budget=budget,
        frames=frames,
        device=device,
        memory=memory,
        fastv=fastv,
    )


def resolve_model(model: str | None) -> str | os.PathLike | None:
    """A checkpoint folder for ``model=``: a path as given, a name of ``vidpool models list`` built on
    first use (locally, nothing is downloaded), or ``None`` for the default model."""
    if model is None or Path(model).expanduser().exists():
        return None if model is None else Path(model).expanduser()
    from vidpool.models import build_model, model_names

    if model in model_names():
        return build_model(model)
    raise InvalidArgumentError(
        f"model={model!r} is neither a checkpoint folder nor a model vidpool builds "
        f"({', '.join(model_names())}); pass model=PATH or model=NAME"
    )


class VidpoolLMM(lmms):
    """lmms-eval chat model running a vidpool checkpoint with a chosen compression method and budget.

    Args:
        model: a checkpoint folder, or a name from ``vidpool models list`` (default: the default model).
        method: compression method (``vidpool.list_methods()``; default: the checkpoint's).
        budget: visual-token budget (default: the checkpoint's).
        frames: frames sampled per video (default: the checkpoint's).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: :func:`vidpool.options.default_device`).
        memory: memory to plan for on ``device``, e.g. ``24GB`` (default: what the device has free).
        fastv: ``LAYER:BUDGET`` or ``LAYER:SHARE`` (``2:64``, ``2:0.5``): FastV inside the LM while it
            generates (:class:`vidpool.options.FastV`; default: none). Loglikelihood requests are refused
            with it: they score the answer without generating.
    """

    is_simple = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.args = parse_model_args(**kwargs)
        from vidpool.encode import FeatureCache
        from vidpool.models import default_model, say_notice
        from vidpool.pipeline import load

        folder = resolve_model(self.args.model) or default_model()
        self.model = load(folder, device=self.args.device)
        say_notice(folder)
        # lmms-eval sends a document's requests together (a multiple_choice item: one per option), so
        # a few entries let each video be encoded once without holding the features of many
        self.cache = FeatureCache(max_items=4)

    # -- one request ----------------------------------------------------------------------
    def chat(self, video: Any, *, max_new_tokens: int = 1) -> Any:
        """A :class:`vidpool.VideoChat` about ``video`` with this model's method, budget and frames."""
        from vidpool.pipeline import VideoChat

        return VideoChat(
            video,
            self.model,
            device=self.args.device,
            num_frames=self.args.frames,
            budget=self.args.budget,
            method=self.args.method,
            max_memory=self.args.memory,
            max_new_tokens=max_new_tokens,
            fastv=self.args.fastv,
            cache=self.cache,
        )

    def answer(self, turn: Turn, gen_kwargs: dict[str, Any] | None) -> str:
        """The model's answer to ``turn`` under lmms-eval's ``gen_kwargs``."""
        options = generation_options(gen_kwargs)
        chat = self.chat(turn.video, max_new_tokens=options["max_new_tokens"])
        chat.history = list(turn.history)
        return str(chat.ask(turn.question, **options))

    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _turn(self, args: tuple) -> tuple[Turn, dict[str, Any]]:
        """The turn and gen_kwargs of a generation request, chat layout or simple layout."""
        context, second, third, doc_id, task, split = args[:6]
        if callable(second):  # chat: (context, doc_to_messages, gen_kwargs, ...)
            return turn_from_messages(second(self._doc(task, split, doc_id))), dict(third or {})
        return turn_from_visuals(context, third, self._doc(task, split, doc_id)), dict(second or {})

    # -- lmms-eval's interface ------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """One answer per request, cut at the first of its ``until`` strings."""
        answers = []
        for request in requests:
            turn, gen_kwargs = self._turn(request.args)
            answer = self.answer(turn, gen_kwargs)
            answers.append(answer)
            self.cache_hook.add_partial("generate_until", (request.args[0], gen_kwargs), answer)
        return answers

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Each request's answers, round by round, in one conversation about one video.

        Round 0 is ``doc_to_messages(doc)``; later rounds come from ``doc_to_messages(doc, round_idx=i,
        previous_output=[...], previous_round_info=...)`` until it says the conversation is over (or
        gives something other than its ``(messages, terminal, previous_output, info)`` tuple).
        """
        results = []
        for request in requests:
            _, doc_to_messages, gen_kwargs, doc_id, task, split = request.args[:6]
            if not callable(doc_to_messages):
                raise InvalidArgumentError(
                    "multi-round requests need a doc_to_messages task (run without --force_simple)"
                )
            doc = self._doc(task, split, doc_id)
            results.append(self._conversation(doc_to_messages, doc, generation_options(gen_kwargs), task))
        return results

    def _conversation(self, doc_to_messages: Any, doc: Any, options: dict[str, Any], task: str) -> list[str]:
        outputs: list[str] = []
        chat = None
        info = None
        for round_idx in range(_MAX_ROUNDS):
            if round_idx == 0:
                messages = doc_to_messages(doc)
            else:
                payload = doc_to_messages(
                    doc, round_idx=round_idx, previous_output=list(outputs), previous_round_info=info
                )
                if not (isinstance(payload, tuple) and len(payload) == 4):
                    return outputs
                messages, terminal, _, info = payload
                if terminal:
                    return outputs
            turn = turn_from_messages(messages, need_video=chat is None)
            if chat is None:
                chat = self.chat(turn.video, max_new_tokens=options["max_new_tokens"])
            elif turn.video is not None and not _same_video(turn.video, chat.video):
                raise InvalidArgumentError(
                    "a later round brought another video; vidpool keeps one video per conversation"
                )
            if turn.history:
                chat.history = list(turn.history)
            outputs.append(str(chat.ask(turn.question, **options)))
        raise InvalidArgumentError(
            f"doc_to_messages of task {task!r} did not end the conversation within {_MAX_ROUNDS} rounds"
        )

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(log p(continuation | video, context), is greedy)`` per request (simple layout:
        ``(context, continuation, doc_to_visual, doc_id, task, split)``)."""
        if self.args.fastv is not None:
            raise InvalidArgumentError(
                "fastv prunes while the model generates; loglikelihood requests score the answer without "
                "generating, so they would not be pruned: run these tasks without fastv"
            )
        scores = []
        for request in requests:
            args = request.args
            if len(args) < 6:
                raise InvalidArgumentError(
                    "a loglikelihood request without the document's visuals (acc_mutual_info's unconditional "
                    "half) cannot be scored: vidpool models always read a video; use metric acc instead"
                )
            context, continuation, doc_to_visual, doc_id, task, split = args[:6]
            turn = turn_from_visuals(context, doc_to_visual, self._doc(task, split, doc_id))
            chat = self.chat(turn.video)
            tokens = chat.visual_tokens(turn.question)
            scores.append(
                self.model.continuation_logprob(
                    tokens, turn.question, continuation, timestamps=chat.timestamps
                )
            )
        return scores


class VidpoolSimpleLMM(VidpoolLMM):
    """The same model for ``--force_simple``: ``doc_to_visual`` tasks, ``multiple_choice`` included."""

    is_simple = True


def _same_video(a: Any, b: Any) -> bool:
    if isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike)):
        return os.path.abspath(a) == os.path.abspath(b)
    return a is b or (getattr(a, "shape", None) == getattr(b, "shape", None) and bool((a == b).all()))
