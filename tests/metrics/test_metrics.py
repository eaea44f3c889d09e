import math

import numpy as np
import pytest

from sam4med.metrics import dice, hausdorff, image_diagonal, iou

A = np.array([[1, 1], [0, 0]], dtype=bool)
B = np.array([[1, 0], [1, 0]], dtype=bool)
EMPTY = np.zeros((2, 2), dtype=bool)


def test_hand_computed_2x2():
    assert dice(A, B) == pytest.approx(0.5)  # 2*1 / (2+2)
    assert iou(A, B) == pytest.approx(1 / 3)
    assert dice(A, A) == 1.0 and iou(A, A) == 1.0


def test_empty_rules():
    assert dice(EMPTY, EMPTY) == 1.0 and iou(EMPTY, EMPTY) == 1.0 and hausdorff(EMPTY, EMPTY) == 0.0
    assert dice(EMPTY, A) == 0.0 and iou(A, EMPTY) == 0.0
    assert hausdorff(EMPTY, A) == pytest.approx(math.sqrt(8))
    assert hausdorff(EMPTY, A, spacing=(2.0, 0.5)) == pytest.approx(image_diagonal((2, 2), (2.0, 0.5)))


def test_hausdorff_of_shifted_square():
    a = np.zeros((20, 20), dtype=bool)
    a[5:10, 5:10] = True
    b = np.roll(a, 3, axis=1)
    assert hausdorff(a, b) == pytest.approx(3.0)
    assert hausdorff(a, b, spacing=(0.5, 1.0)) == pytest.approx(1.5)  # X spacing applies to columns
    c = np.roll(a, 3, axis=0)
    assert hausdorff(a, c, spacing=(0.5, 1.0)) == pytest.approx(3.0)
    assert hausdorff(a, b, percentile=95) <= hausdorff(a, b)
