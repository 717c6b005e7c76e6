"""The Gradio chat demo (``vidpool demo``, ``pip install 'vidpool[demo]'``): chat about an uploaded video,
with a panel of what the last answer (or error) did: sampled frames, what compression kept, tokens, stage
times and the memory plan.

Gradio is imported when the app is built, not with this package.
"""

from __future__ import annotations

from vidpool.demo.app import CONCURRENCY_ID, build_app, launch
from vidpool.demo.config import DemoConfig, model_notice
from vidpool.demo.samples import Sample, sample_videos

__all__ = ["CONCURRENCY_ID", "DemoConfig", "Sample", "build_app", "launch", "model_notice", "sample_videos"]
