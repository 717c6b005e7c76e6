"""How loud the position layer of an ``mlp2x_gelu_where`` projector is beside the visual tokens.

    python scripts/position_scale.py .cache/train_synth_vlm_where/work/state.pt \
        .cache/train_synth_vlm_poslr/work/state.pt --items 8

Each argument is a projector: a ``projector.safetensors`` or a training state (``state.pt`` of
``scripts/train_synth_vlm.py``, whose projector sits under ``trainable`` as ``projector.*``). On
``--items`` development-seed items of every family, every visual token at ``--frames`` frames of the
world CLIP, it prints per projector the mean per-token L2 norm of the projected features (the MLP),
of the position layer's output (what ``where`` adds), and their ratio; beside them the mean norm of
the LM's word embeddings, the scale the LM reads text at. A position signal that is a small fraction
of the token it is added to is hard for the LM to read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vidpool.options import positive_int


def projector_weights(path: Path) -> dict[str, torch.Tensor]:
    """An ``mlp2x_gelu_where`` state dict from a safetensors file or a training state."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainable = state.get("trainable", state.get("projector"))
    if trainable is None:
        raise SystemExit(f"{path}: no 'trainable' or 'projector' weights in this state")
    prefix = "projector."
    return {k[len(prefix) :]: v for k, v in trainable.items() if k.startswith(prefix)} or dict(trainable)


def scales(projector: torch.nn.Module, grids: list[torch.Tensor]) -> dict[str, float]:
    """Mean per-token norms of the MLP's output and of the position layer's over ``grids [T, h, w, C]``."""
    from vidpool.compression import grid_positions
    from vidpool.llm.projector import position_features

    tokens, where = [], []
    with torch.no_grad():
        for grid in grids:
            tokens.append(projector(grid.float()).flatten(0, -2).norm(dim=-1))
            place = grid_positions(*grid.shape[:3])
            where.append(projector.where(position_features(place)).flatten(0, -2).norm(dim=-1))
    token, added = torch.cat(tokens).mean().item(), torch.cat(where).mean().item()
    return {"token_norm": round(token, 3), "position_norm": round(added, 3), "ratio": round(added / token, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projectors", type=Path, nargs="+", help="projector.safetensors or state.pt files")
    parser.add_argument("--items", type=positive_int, default=8, help="development items a family")
    parser.add_argument("--frames", type=positive_int, default=16)
    parser.add_argument(
        "--model", default="vidpool-synth", help="the model (a name or folder) whose encoder and LM to use"
    )
    args = parser.parse_args(argv)
    for path in args.projectors:
        if not path.is_file():
            parser.error(f"{path} is not a file")

    import vidpool
    from vidpool.bench.generative import sample_clip
    from vidpool.bench.synth.seeds import DEVELOPMENT_SEED
    from vidpool.bench.synth.tasks import FAMILIES, make_items, render_item
    from vidpool.llm import build_projector
    from vidpool.models import build_model, model_names

    folder = build_model(args.model) if args.model in model_names() else args.model
    model = vidpool.load_model(folder, dtype=torch.float32)
    grids = []
    with torch.no_grad():
        for family in FAMILIES:
            for item in make_items(family, args.items, seed=DEVELOPMENT_SEED):
                clip, _ = sample_clip(render_item(item), args.frames)
                grids.append(model.encode(torch.from_numpy(clip)).patches.float().cpu())
    words = model.input_embeddings.weight.detach().float().norm(dim=-1).mean().item()
    c, hidden = grids[0].shape[-1], model.input_embeddings.weight.shape[-1]
    rows = {"word_embedding_norm": round(words, 3), "tokens": sum(g[..., 0].numel() for g in grids)}
    for path in args.projectors:
        projector = build_projector("mlp2x_gelu_where", c, hidden)
        projector.load_state_dict(projector_weights(path))
        rows[str(path)] = scales(projector.eval(), grids)
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
