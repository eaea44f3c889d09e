"""HD and HD95 from one computation of the boundary distances equal two separate MONAI calls."""

import numpy as np
import pytest

from sam4med.metrics import hausdorff, hausdorff_pair


def random_masks(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(4, 40)), int(rng.integers(4, 40)))
    return rng.random(shape) < rng.random(), rng.random(shape) < rng.random()


@pytest.mark.parametrize("spacing", [None, (1.0, 1.0), (0.5, 2.0)])
def test_pair_equals_separate_calls(spacing):
    for seed in range(30):
        pred, gt = random_masks(seed)
        expected = (hausdorff(pred, gt, spacing=spacing), hausdorff(pred, gt, percentile=95, spacing=spacing))
        assert hausdorff_pair(pred, gt, spacing=spacing) == expected


def test_pair_empty_cases():
    empty, square = np.zeros((5, 7), bool), np.zeros((5, 7), bool)
    square[1:3, 2:5] = True
    assert hausdorff_pair(empty, empty) == (0.0, 0.0)
    diagonal = hausdorff(empty, square, spacing=(2.0, 0.5))
    assert hausdorff_pair(empty, square, spacing=(2.0, 0.5)) == (diagonal, diagonal)
    assert hausdorff_pair(square, square) == (0.0, 0.0)
