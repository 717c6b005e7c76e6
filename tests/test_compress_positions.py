"""Compressed.token_positions: where and when each output token comes from, read from provenance.

References the code did not write: torch's own average pooling of the cell-centre grid for pooled
tokens, and the grid cell that provenance names for pruned tokens.
"""

from __future__ import annotations

import pytest
import torch

import vidpool
from vidpool.compression import grid_positions


def _features(t=8, h=6, w=6, c=8, seed=0):
    return torch.randn(t, h, w, c, generator=torch.Generator().manual_seed(seed))


def test_grid_positions_are_cell_centres_as_fractions():
    grid = grid_positions(4, 2, 5)
    assert grid.shape == (4, 2, 5, 3)
    assert torch.allclose(grid[:, 0, 0, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(grid[0, :, 0, 1], torch.tensor([0.25, 0.75]))
    assert torch.allclose(grid[0, 0, :, 2], torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]))


def test_every_token_sits_at_its_own_cell():
    result = vidpool.compress(_features(), "none")
    assert torch.allclose(result.token_positions(), grid_positions(8, 6, 6).reshape(-1, 3))


@pytest.mark.parametrize("stride", [2, 3])
def test_pooled_tokens_sit_at_the_mean_of_their_window(stride):
    result = vidpool.compress(_features(), "spatial", stride=stride)
    grid = grid_positions(8, 6, 6).permute(3, 0, 1, 2)  # [3, T, H, W]
    pooled = torch.nn.functional.avg_pool3d(grid, (1, stride, stride))  # torch's pooling, not ours
    assert torch.allclose(result.token_positions(), pooled.permute(1, 2, 3, 0).reshape(-1, 3), atol=1e-6)


def test_frames_pooled_in_time_sit_at_their_mean_time():
    result = vidpool.compress(_features(), "adaptive", grid=(2, 3, 3))
    times = result.token_positions()[:, 0].reshape(2, 9)
    # frames 0-3 of 8 (centres 1/16 .. 7/16) and 4-7
    assert torch.allclose(times[0], torch.full((9,), 0.25))
    assert torch.allclose(times[1], torch.full((9,), 0.75))


@pytest.mark.parametrize("method", ["divprune", "random_drop", "frame_subsample", "fastvid"])
def test_pruned_tokens_sit_at_the_cell_they_kept(method):
    result = vidpool.compress(_features(), method, budget=40)
    where = result.token_positions()
    grid = grid_positions(8, 6, 6)
    for n in range(result.num_tokens):
        cells = (result.assign == n).nonzero()
        weights = result.weight[tuple(cells.T)]
        expected = (grid[tuple(cells.T)] * weights[:, None]).sum(0) / weights.sum()
        assert torch.allclose(where[n], expected, atol=1e-6)


def test_batches_give_one_row_of_positions_per_video():
    feats = torch.stack([_features(seed=0), _features(seed=1)])
    batch = vidpool.compress(feats, "divprune", budget=24)
    where = batch.token_positions()
    assert where.shape == (2, 24, 3)
    for b in range(2):
        alone = vidpool.compress(feats[b], "divprune", budget=24)
        assert torch.allclose(where[b], alone.token_positions())


def test_a_token_no_position_is_assigned_to_sits_at_the_centre():
    result = vidpool.compress(_features(), "slowfast", budget=64)
    used = torch.zeros(result.num_tokens, dtype=torch.bool)
    used[result.assign[result.assign >= 0]] = True
    assert not used.all(), "slowfast is expected to have tokens that no position feeds most"
    where = result.token_positions()
    assert torch.equal(where[~used], torch.full(((~used).sum().item(), 3), 0.5))
    assert ((where[used] > 0) & (where[used] < 1)).all()


def test_provenance_mean_gathers_pruned_rows_averages_pooled_ones_and_marks_unfed_tokens():
    from vidpool.compression import provenance_mean

    assign = torch.tensor([0, 0, 2, -1, 1])
    weight = torch.tensor([0.25, 0.75, 1.0, 0.0, 1.0])
    values = torch.tensor([[0.0], [4.0], [7.0], [100.0], [5.0]])
    out = provenance_mean(assign, weight, values, 4, torch.float64)
    assert out[:3, 0].tolist() == [3.0, 5.0, 7.0]  # 0.25*0 + 0.75*4; a gather; a gather
    assert torch.isnan(out[3]).all()  # no position feeds token 3; the dropped row counts nowhere
