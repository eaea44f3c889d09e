"""NSD (normalised surface distance) equals MONAI's compute_surface_dice, by hand on known shifts, in 2D and 3D."""

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance, compute_surface_dice

from sam4med.errors import ConfigError
from sam4med.evaluation.scoring import MetricSettings
from sam4med.metrics import hausdorff_pair, image_diagonal
from sam4med.metrics.surface import (
    NsdRule,
    apply_nsd_rule,
    boundary_scores,
    mask_diagonal,
    normalised_surface_dice,
)


def square(shift: int = 0, size: int = 20) -> np.ndarray:
    """A 10 x 10 square at rows 5-14, columns 5-14, moved ``shift`` pixels along X (the columns)."""
    mask = np.zeros((size, size), dtype=bool)
    mask[5:15, 5 + shift : 15 + shift] = True
    return mask


def monai_nsd(pred, gt, tolerance, axis_spacing=None) -> float:
    """MONAI itself, spacing per array axis (rows first), as the reference."""
    p, g = torch.from_numpy(pred)[None, None].float(), torch.from_numpy(gt)[None, None].float()
    return float(compute_surface_dice(p, g, [tolerance], include_background=True, spacing=axis_spacing).item())


@pytest.mark.parametrize(("tolerance", "by_hand"), [(1.0, 18 / 36), (2.0, 22 / 36), (2.9, 22 / 36), (3.0, 1.0)])
def test_a_square_shifted_by_three_pixels(tolerance, by_hand):
    # each square has 36 boundary pixels; of the shifted square's, those within `tolerance` of the other boundary:
    # top and bottom rows 7 + min(3, floor(t)) of 10 each, left column the rows within t of a corner
    # (min(r-5, 14-r) <= t), right column none below 3 (all at distance 3); the same counts the other way round
    pred, gt = square(3), square()
    assert normalised_surface_dice(pred, gt, tolerance) == pytest.approx(by_hand, abs=1e-6)
    assert normalised_surface_dice(pred, gt, tolerance) == monai_nsd(pred, gt, tolerance)
    assert boundary_scores(pred, gt, tolerance=tolerance).nsd == pytest.approx(by_hand, abs=1e-12)


def test_spacing_is_x_then_y_as_for_hd():
    # the square moved 3 columns with 0.5 mm per column: 1.5 mm apart; within 1 mm: top/bottom rows 9 of 10,
    # left column 2 of 8 (rows next to a corner), right column none -> 20 of 36, both ways
    pred, gt = square(3), square()
    assert normalised_surface_dice(pred, gt, 1.0, spacing=(0.5, 1.0)) == pytest.approx(20 / 36, abs=1e-6)
    assert normalised_surface_dice(pred, gt, 1.0, spacing=(0.5, 1.0)) == monai_nsd(pred, gt, 1.0, (1.0, 0.5))
    # two horizontal lines two rows apart: 1 mm apart with 0.5 mm per row (Y), 2 mm with 1 mm per row
    line, below = np.zeros((8, 12), bool), np.zeros((8, 12), bool)
    line[2, 1:11], below[4, 1:11] = True, True
    assert normalised_surface_dice(below, line, 1.0, spacing=(1.0, 0.5)) == 1.0
    assert normalised_surface_dice(below, line, 1.0, spacing=(0.5, 1.0)) == 0.0


def test_lines_of_different_length_by_hand():
    # ground truth: 10 pixels of row 2; prediction: 15 pixels of row 4 (each line is its own boundary).
    # Prediction -> truth: 10 at distance 2, then sqrt(4 + k^2) for k = 1..5 (2.24, 2.83, 3.61, 4.47, 5.39);
    # truth -> prediction: all 10 at 2. Tolerance 2: 20 of 25; tolerance 3: 22 of 25; below 2: none.
    gt, pred = np.zeros((8, 20), bool), np.zeros((8, 20), bool)
    gt[2, 0:10], pred[4, 0:15] = True, True
    for tolerance, by_hand in ((2.0, 20 / 25), (3.0, 22 / 25), (1.9, 0.0)):
        assert normalised_surface_dice(pred, gt, tolerance) == pytest.approx(by_hand, abs=1e-6)
        assert boundary_scores(pred, gt, tolerance=tolerance).nsd == pytest.approx(by_hand, abs=1e-12)
    assert boundary_scores(pred, gt, tolerance=2).hd == pytest.approx(math.sqrt(29))


def random_masks(seed: int, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(4, 24 if ndim == 2 else 10)) for _ in range(ndim))
    return rng.random(shape) < rng.random(), rng.random(shape) < rng.random()


@pytest.mark.parametrize(("ndim", "spacing"), [(2, None), (2, (0.5, 2.0)), (3, None), (3, (0.7, 1.0, 2.5))])
def test_one_pass_equals_monai_nsd_and_hausdorff(ndim, spacing):
    axis_spacing = spacing[::-1] if spacing else None
    for seed in range(12):
        pred, gt = random_masks(seed, ndim)
        if not pred.any() or not gt.any():
            continue
        for tolerance in (0.0, 1.0, 2.0):
            scores = boundary_scores(pred, gt, tolerance=tolerance, spacing=spacing)
            reference = monai_nsd(pred, gt, tolerance, axis_spacing)
            assert scores.nsd == pytest.approx(reference, rel=1e-6)
            assert normalised_surface_dice(pred, gt, tolerance, spacing=spacing) == reference
        p, g = torch.from_numpy(pred)[None, None].float(), torch.from_numpy(gt)[None, None].float()
        hd = compute_hausdorff_distance(p, g, include_background=True, spacing=axis_spacing)
        hd95 = compute_hausdorff_distance(p, g, include_background=True, percentile=95, spacing=axis_spacing)
        assert (scores.hd, scores.hd_percentile) == (float(hd.item()), float(hd95.item()))
        if ndim == 2:  # the HD of sam4med.metrics.distance, from the same pass
            assert (scores.hd, scores.hd_percentile) == hausdorff_pair(pred, gt, spacing=spacing)


def test_a_volume_shifted_by_one_slice_uses_the_z_spacing():
    volume = np.zeros((6, 12, 12), dtype=bool)
    volume[1:5, 2:10, 2:10] = True
    shifted = np.roll(volume, 1, axis=0)  # one slice along Z, the first array axis
    thick = boundary_scores(shifted, volume, tolerance=2.0, spacing=(1.0, 1.0, 2.0))  # X, Y, Z: 2 mm slices
    assert thick.hd == 2.0 and thick.nsd == 1.0
    assert normalised_surface_dice(shifted, volume, 1.9, spacing=(1.0, 1.0, 2.0)) < 1.0
    # 2 mm columns (X) and 1 mm slices: the slice shift is 1 mm, everything within 1 mm
    assert boundary_scores(shifted, volume, tolerance=1.0, spacing=(2.0, 1.0, 1.0)).nsd == 1.0


def test_empty_cases():
    empty, full = np.zeros((5, 7), bool), square(size=20)[:5, :7] | True
    assert normalised_surface_dice(empty, empty, 2.0) == 1.0  # MONAI: nan
    assert normalised_surface_dice(empty, full, 2.0) == 0.0 and normalised_surface_dice(full, empty, 2.0) == 0.0
    both = boundary_scores(empty, empty, tolerance=2.0)
    assert (both.hd, both.hd_percentile, both.nsd) == (0.0, 0.0, 1.0)
    miss = boundary_scores(empty, full, tolerance=2.0, spacing=(2.0, 0.5))
    diagonal = image_diagonal((5, 7), (2.0, 0.5))
    assert (miss.hd, miss.hd_percentile, miss.nsd) == (diagonal, diagonal, 0.0)
    assert hausdorff_pair(empty, full, spacing=(2.0, 0.5)) == (diagonal, diagonal)
    assert mask_diagonal((3, 4, 12), (1.0, 1.0, 1.0)) == 13.0
    empty3 = np.zeros((2, 3, 4), bool)
    assert normalised_surface_dice(empty3, empty3, 2.0, spacing=(1, 1, 3)) == 1.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="needs 2"):
        normalised_surface_dice(square(), square(), 2.0, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="nsd_tolerance"):
        normalised_surface_dice(square(), square(), -1.0)
    with pytest.raises(ValueError, match="one shape"):
        boundary_scores(square(), square(size=21), tolerance=2.0)


def test_the_cvpr2024_rule_zeroes_nsd_where_dice_is_at_most_0_2():
    assert apply_nsd_rule(0.7, 0.2, NsdRule.CVPR2024) == 0.0
    assert apply_nsd_rule(0.7, 0.21, "cvpr2024") == 0.7
    assert apply_nsd_rule(0.7, 0.1, "standard") == 0.7
    with pytest.raises(ValueError, match="standard, cvpr2024"):
        apply_nsd_rule(0.7, 0.5, "cvpr2025")


def test_metric_settings_are_checked():
    assert MetricSettings().key() == {"nsd_tolerance": 2.0, "nsd_rule": "standard"}
    assert MetricSettings(nsd_tolerance=1, nsd_rule="cvpr2024").nsd_rule is NsdRule.CVPR2024
    with pytest.raises(ConfigError, match=r"metrics.nsd_tolerance=-1: must be >= 0"):
        MetricSettings(nsd_tolerance=-1)
    with pytest.raises(ConfigError, match=r"metrics.nsd_tolerance=nan"):
        MetricSettings(nsd_tolerance=float("nan"))
    with pytest.raises(ConfigError, match=r"metrics.nsd_rule=strict: must be one of standard, cvpr2024"):
        MetricSettings(nsd_rule="strict")
