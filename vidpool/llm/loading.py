"""Loading checkpoints safely: safetensors only unless asked, no remote code unless asked.

``load_model`` looks at the folder and dispatches through the registry of model kinds
(:mod:`vidpool.llm.kinds`): ``vidpool.json`` means a native checkpoint, a transformers ``config.json``
means the kind registered for its ``model_type`` (the LLaVA-family integration).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from vidpool.errors import CheckpointError, InvalidArgumentError, require
from vidpool.llm.compat import dtype_kwargs, faster_gguf_loading
from vidpool.llm.config import CONFIG_NAME
from vidpool.schedule.spec import register_kind_detector

__all__ = [
    "LoadOptions",
    "check_weight_files",
    "detect_kind",
    "load_causal_lm",
    "load_model",
    "pretrained_kwargs",
    "resolve_attn_implementation",
    "resolve_dtype",
]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def detect_kind(path: str | Path) -> str:
    """The registered kind of a checkpoint folder: ``"native"`` or one of a transformers ``model_type``
    (``"llava_onevision"``, ``"llava_next_video"``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder not found: {folder}; build the test ones with "
            "`python scripts/make_tiny_checkpoint.py` or pass a folder holding vidpool.json or config.json"
        )
    if (folder / CONFIG_NAME).is_file():
        return "native"
    config = folder / "config.json"
    if config.is_file():
        from vidpool.llm.kinds import get_kind, kind_of_model_type, list_kinds

        model_type = json.loads(config.read_text()).get("model_type")
        kind = kind_of_model_type(model_type)
        if kind is not None:
            return kind
        types = sorted(t for name in list_kinds() for t in get_kind(name).model_types)
        raise CheckpointError(
            f"{folder} holds a transformers model of type {model_type!r}; vidpool loads native checkpoints "
            f"({CONFIG_NAME}) and the transformers types {types}"
        )
    raise CheckpointError(f"{folder} has neither {CONFIG_NAME} nor config.json; it is not a model checkpoint")


# the planner sizes a checkpoint folder by the kind this names (vidpool.schedule never imports vidpool.llm)
register_kind_detector(detect_kind)


def check_weight_files(folder: str | Path, *, allow_pickle: bool = False) -> None:
    """Refuse a folder whose weights exist only in pickle formats unless ``allow_pickle``.

    Pickle files can run arbitrary code when loaded; safetensors cannot.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    files = [p for p in folder.iterdir() if p.is_file()]
    has_safe = any(p.suffix == ".safetensors" or p.suffix == ".gguf" for p in files)
    pickled = sorted(p.name for p in files if p.suffix in _PICKLE_SUFFIXES)
    if pickled and not has_safe and not allow_pickle:
        raise CheckpointError(
            f"{folder} stores weights only as pickle files ({', '.join(pickled)}), which can run code when "
            "loaded. Convert them to safetensors, or pass allow_pickle=True if you trust the source."
        )


def _targets_cuda(device: Any) -> bool:
    """Whether a device or an accelerate device map puts weights on a CUDA device."""
    if isinstance(device, dict):
        return any(_targets_cuda(v if not isinstance(v, int) else "cuda") for v in device.values())
    if isinstance(device, int):
        device = "cuda"
    text = str(device)
    if text in ("auto", "balanced", "balanced_low_0", "sequential"):
        return torch.cuda.is_available()
    return text.startswith("cuda") and torch.cuda.is_available()


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None) -> torch.dtype:
    """The dtype to load weights in: ``dtype`` if given, else bfloat16 on CUDA (float16 if unsupported), float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise InvalidArgumentError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        return _DTYPES[dtype]
    if dtype is not None:
        raise InvalidArgumentError(f"dtype must be a torch.dtype or a name, got {type(dtype).__name__}")
    if _targets_cuda(device):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_attn_implementation(attn_implementation: str | None, device: str | torch.device | None) -> str:
    """``attn_implementation`` if given; else ``"flash_attention_2"`` on CUDA with flash-attn installed, else ``"sdpa"``."""
    if attn_implementation is not None:
        if attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise InvalidArgumentError(
                "attn_implementation='flash_attention_2' needs flash-attn: pip install 'vidpool[gpu]'"
            )
        return attn_implementation
    if _targets_cuda(device) and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def pretrained_kwargs(
    *,
    dtype: torch.dtype,
    attn_implementation: str,
    device_map: Any = None,
    max_memory: dict[Any, Any] | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    gguf: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained`` that carry vidpool's safety and placement choices."""
    kwargs: dict[str, Any] = {
        **dtype_kwargs(dtype),
        "attn_implementation": attn_implementation,
        "trust_remote_code": trust_remote_code,
    }
    if not gguf and not allow_pickle:
        kwargs["use_safetensors"] = True
    if device_map is not None:
        require("accelerate", "llm", "Placing a model with device_map")
        kwargs["device_map"] = device_map
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
    elif max_memory is not None:
        raise InvalidArgumentError("max_memory needs device_map (for example device_map='auto')")
    return kwargs


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint: placement, weight dtype, attention kernel and the safety switches.

    Attributes:
        device: where to put the whole model when ``device_map`` is not given (default ``"cpu"``, as
            ``from_pretrained``: this is a building block; the runs that load a model for you,
            ``VideoChat``, ``Captioner`` and every command, pass :func:`vidpool.options.default_device`).
        dtype: weight dtype (default float32 on CPU, bfloat16 on CUDA).
        device_map, max_memory: accelerate placement and CPU/disk offload (e.g. ``device_map="auto"``).
        attn_implementation: default ``"sdpa"``, or ``"flash_attention_2"`` when flash-attn is installed.
        allow_pickle: allow ``.bin``/``.pt`` weights (they can run code when loaded).
        trust_remote_code: allow a checkpoint's own Python code to run (off by default).
    """

    device: str | torch.device = "cpu"
    dtype: torch.dtype | str | None = None
    device_map: Any = None
    max_memory: dict[Any, Any] | None = None
    attn_implementation: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @classmethod
    def of(cls, options: dict[str, Any]) -> LoadOptions:
        """Options from keyword arguments, refusing names that are not options."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise InvalidArgumentError(f"unknown load option(s) {unknown}; the options are {names}")
        return cls(**options)

    @property
    def placement(self) -> Any:
        """The device map when given, else the device."""
        return self.device_map or self.device

    def resolved(self) -> LoadOptions:
        """These options with ``dtype`` resolved to a ``torch.dtype`` for the placement."""
        return replace(self, dtype=resolve_dtype(self.dtype, self.placement))

    def pretrained_kwargs(self, *, gguf: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` (see :func:`pretrained_kwargs`)."""
        return pretrained_kwargs(
            dtype=resolve_dtype(self.dtype, self.placement),
            attn_implementation=resolve_attn_implementation(self.attn_implementation, self.placement),
            device_map=self.device_map,
            max_memory=self.max_memory,
            allow_pickle=self.allow_pickle,
            trust_remote_code=self.trust_remote_code,
            gguf=gguf,
        )

    def place(self, model: Any) -> Any:
        """Move ``model`` to ``device`` unless accelerate placed it, and put it in eval mode."""
        if self.device_map is None:
            model.to(self.device)
        return model.eval()


def load_causal_lm(spec: dict[str, Any], **options: Any) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for an LM spec ``{"path", "gguf_file", "tokenizer", "config", "adapter"}``.

    ``path`` is a local folder or a hub name (hub names load only from the local cache unless the
    environment allows downloads). With ``gguf_file`` the quantized file is dequantized to ``dtype``.
    ``tokenizer`` and ``config`` optionally name folders holding those saved separately; ``adapter``
    a PEFT LoRA adapter folder, merged into the weights (:func:`vidpool.llm.adapter.merge_lora`).
    ``options`` are those of :class:`LoadOptions`.
    """
    opts = LoadOptions.of(options)
    transformers = require("transformers", "llm", "Loading a language model")
    path = spec.get("path")
    if not path:
        raise CheckpointError("the LM spec needs a 'path' (a folder or a hub name)")
    gguf_file = spec.get("gguf_file")
    if gguf_file:
        require("gguf", "llm", "Loading a GGUF language model")
        if Path(path).is_dir() and not (Path(path) / gguf_file).is_file():
            raise CheckpointError(f"GGUF file {gguf_file} not found in {path}")
    else:
        check_weight_files(path, allow_pickle=opts.allow_pickle)
    if spec.get("adapter"):
        from vidpool.llm.adapter import check_adapter

        check_adapter(spec["adapter"])  # a wrong adapter fails before the LM loads
    kwargs = opts.pretrained_kwargs(gguf=bool(gguf_file))
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        if spec.get("config"):
            # A saved config spares transformers one full parse of a GGUF file's metadata.
            kwargs["config"] = transformers.AutoConfig.from_pretrained(spec["config"])
        with faster_gguf_loading() if gguf_file else contextlib.nullcontext():
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs, **extra)
        tok_path = spec.get("tokenizer")
        tok_extra = {} if tok_path else extra
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            tok_path or path, trust_remote_code=opts.trust_remote_code, **tok_extra
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the language model from {path}: {exc}") from exc
    if spec.get("adapter"):
        from vidpool.llm.adapter import merge_lora

        merge_lora(model, spec["adapter"])
    return opts.place(model), tokenizer


def load_model(path: str | Path, **options: Any):
    """Load a video LM from a checkpoint folder.

    Args:
        path: a native checkpoint folder (``vidpool.json`` + ``projector.safetensors``) or a transformers
            LLaVA-OneVision / LLaVA-NeXT-Video folder.
        options: those of :class:`LoadOptions`: ``device``, ``dtype``, ``device_map``, ``max_memory``,
            ``attn_implementation``, ``allow_pickle``, ``trust_remote_code``.

    Returns:
        A :class:`vidpool.llm.VideoLM` of the folder's registered kind.
    """
    from vidpool.llm.kinds import get_kind

    LoadOptions.of(options)
    return get_kind(detect_kind(path)).load(path, **options)
