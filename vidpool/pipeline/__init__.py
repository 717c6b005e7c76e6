"""One run, end to end: video -> encode (in chunks) -> compress + project -> LM, driven by one plan.

>>> chat = VideoChat("clip.mp4", model=None)   # the default model; see vidpool.models  # doctest: +SKIP
>>> print(chat.plan.table())                                               # doctest: +SKIP
>>> for piece in chat.ask("What happens?", stream=True): print(piece, end="")  # doctest: +SKIP
>>> chat.last_trace.ordered_timings()          # seconds per stage of that answer  # doctest: +SKIP

``VideoChat`` encodes the video once (features kept in a ``FeatureCache``) and answers any number of
questions; ``Captioner`` captions videos one after another with the same model. Each answer leaves a
:class:`Trace` (time per stage, sampled frames, what compression kept) in ``VideoChat.last_trace``.

Every option is checked (:mod:`vidpool.options`) before the model loads or a frame is decoded. Long
stages report to an optional ``progress(stage, done, total)`` callback (:mod:`vidpool.progress`);
without one the pipeline prints nothing.

``load`` and ``plan`` are looked up here by every run, so replacing them on this module (to record
plans, or to refuse loading in a test) takes effect everywhere.
"""

from __future__ import annotations

from vidpool.pipeline.captioning import CAPTION_PROMPT, Caption, Captioner
from vidpool.pipeline.chat import VideoChat, run
from vidpool.pipeline.encoding import EncodedVideo, encode_video
from vidpool.pipeline.loading import ModelOrPath, load, load_kwargs
from vidpool.pipeline.trace import STAGES, StageClock, Trace
from vidpool.schedule import plan

__all__ = [
    "CAPTION_PROMPT",
    "STAGES",
    "Caption",
    "Captioner",
    "EncodedVideo",
    "ModelOrPath",
    "StageClock",
    "Trace",
    "VideoChat",
    "encode_video",
    "load",
    "load_kwargs",
    "plan",
    "run",
]
