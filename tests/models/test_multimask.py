import numpy as np
import pytest

from sam4med.errors import ConfigError
from sam4med.models.multimask import Multimask, choose


def square(size, top, left, side):
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_parse_accepts_names_and_members_and_refuses_the_rest():
    assert Multimask.parse("oracle") is Multimask.ORACLE
    assert Multimask.parse(Multimask.SINGLE) is Multimask.SINGLE
    with pytest.raises(ConfigError, match="got 'Oracle'"):
        Multimask.parse("Oracle")
    assert [m.multimask_output for m in Multimask] == [False, True, True]


def test_oracle_picks_best_dice_and_confidence_picks_best_score():
    gt = square(20, 2, 2, 10)
    candidates = np.stack([square(20, 10, 10, 8), square(20, 2, 2, 9), square(20, 0, 0, 20)])
    scores = np.array([0.9, 0.1, 0.5])
    masks, scores, gts = candidates[None], scores[None], gt[None]
    assert choose(Multimask.ORACLE, masks, scores, gts).tolist() == [1]
    assert choose(Multimask.CONFIDENCE, masks, scores, gts).tolist() == [0]
    assert choose(Multimask.SINGLE, masks[:, :1], scores[:, :1], None).tolist() == [0]


def test_oracle_needs_the_ground_truth():
    with pytest.raises(ValueError, match="ground-truth"):
        choose(Multimask.ORACLE, np.zeros((1, 3, 4, 4), bool), np.zeros((1, 3)), None)
