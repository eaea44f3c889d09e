import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from sam4med.errors import ConfigError
from sam4med.prompts.generate import STRATEGIES, make_prompt, tight_box
from sam4med.prompts.prompt import Prompt

masks = arrays(dtype=bool, shape=st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.booleans()).filter(
    lambda m: m.any()
)


def enlarged_box(mask):
    x0, y0, x1, y1 = tight_box(mask)
    hw, hh = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
    return max(0, np.floor(x0 - hw)), max(0, np.floor(y0 - hh)), np.ceil(x1 + hw), np.ceil(y1 + hh)


@settings(max_examples=150, deadline=None)
@given(mask=masks, strategy=st.sampled_from(sorted(STRATEGIES)), seed=st.integers(0, 2**31))
def test_counts_labels_and_locations(mask, strategy, seed):
    rule = STRATEGIES[strategy]
    if rule.negatives and mask.all():
        with pytest.raises(ValueError, match="no background"):
            make_prompt(mask, strategy, seed=seed, object_key="k")
        return
    prompt = make_prompt(mask, strategy, seed=seed, object_key="k")
    assert prompt.point_labels == (1,) * rule.positives + (0,) * rule.negatives
    assert len(prompt.point_coords) == rule.positives + rule.negatives
    assert (prompt.box is not None) == rule.box
    for (x, y), label in zip(prompt.point_coords, prompt.point_labels, strict=True):
        assert x == int(x) and y == int(y)
        assert mask[int(y), int(x)] == bool(label)  # positives on the object, negatives off it
    neg = prompt.points_array[prompt.labels_array == 0]
    region = np.zeros_like(mask)
    ex0, ey0, ex1, ey1 = (int(v) for v in enlarged_box(mask))
    region[ey0 : ey1 + 1, ex0 : ex1 + 1] = True
    if (region & ~mask).any():  # negatives stay near the object when the region has background
        assert all(region[int(y), int(x)] for x, y in neg)


def test_box_is_tight_and_inclusive():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    assert tight_box(mask) == (3.0, 2.0, 8.0, 4.0)
    assert make_prompt(mask, "S5", seed=0, object_key="a").box == (3.0, 2.0, 8.0, 4.0)


def test_first_positive_is_centre_of_mass_when_inside():
    mask = np.zeros((21, 21), dtype=bool)
    mask[5:16, 5:16] = True
    prompt = make_prompt(mask, "S3", seed=0, object_key="a")
    assert prompt.point_coords[0] == (10.0, 10.0)
    assert len(set(prompt.point_coords)) == 5  # distinct while the mask has enough pixels


def test_ring_never_uses_its_empty_centre():
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring = (r <= 15) & (r >= 10)
    for seed in range(20):
        prompt = make_prompt(ring, "S2", seed=seed, object_key="ring")
        ((x, y),) = prompt.point_coords
        assert ring[int(y), int(x)] and (x, y) != (20.0, 20.0)


def test_tiny_object_gets_exact_counts():
    mask = np.zeros((8, 8), dtype=bool)
    mask[3, 4] = True
    prompt = make_prompt(mask, "S4", seed=5, object_key="dot")
    assert prompt.point_labels == (1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
    assert set(prompt.point_coords[:5]) == {(4.0, 3.0)}


def test_object_touching_border():
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:3, 7:10] = True
    prompt = make_prompt(mask, "S4", seed=1, object_key="edge")
    pts = prompt.points_array
    assert pts.min() >= 0 and pts[:, 0].max() <= 9 and pts[:, 1].max() <= 9


def test_seeded_per_object():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:25, 5:25] = True
    a = make_prompt(mask, "S3", seed=7, object_key="x")
    assert a == make_prompt(mask, "S3", seed=7, object_key="x")
    assert a.point_coords != make_prompt(mask, "S3", seed=7, object_key="y").point_coords
    assert a.point_coords != make_prompt(mask, "S3", seed=8, object_key="x").point_coords


def test_prompt_round_trips_through_dict():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:25, 5:25] = True
    prompt = make_prompt(mask, "S6", seed=3, object_key="x")
    assert Prompt.from_dict(prompt.to_dict()) == prompt


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        make_prompt(np.zeros((4, 4), dtype=bool), "S5", seed=0, object_key="none")


@settings(max_examples=100, deadline=None)
@given(mask=masks, strategy=st.sampled_from(["S2", "S3", "S4", "S6"]), seed=st.integers(0, 2**31))
def test_first_positive_rule_distinct_points_and_determinism(mask, strategy, seed):
    if mask.all() and STRATEGIES[strategy].negatives:
        return
    prompt = make_prompt(mask, strategy, seed=seed, object_key="k")
    assert prompt == make_prompt(mask, strategy, seed=seed, object_key="k")
    cy, cx = ndimage.center_of_mass(mask)
    r, c = int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))
    positives = [p for p, label in zip(prompt.point_coords, prompt.point_labels, strict=True) if label == 1]
    if mask[r, c]:
        assert positives[0] == (float(c), float(r))
    if mask.sum() >= len(positives):
        assert len(set(positives)) == len(positives)  # no repeats while the object has enough pixels


@pytest.mark.parametrize("sampling", ["random", "strided"])
def test_prompts_are_nested_per_object(sampling):
    yy, xx = np.mgrid[:40, :40]
    mask = np.hypot(yy - 18, xx - 22) <= 9
    p = {s: make_prompt(mask, s, seed=4, object_key="o", sampling=sampling) for s in STRATEGIES}
    assert p["S3"].point_coords[:1] == p["S2"].point_coords == p["S6"].point_coords
    assert p["S4"].point_coords[:5] == p["S3"].point_coords  # S4 only adds negatives
    assert p["S4"].point_labels == (1,) * 5 + (0,) * 5
    assert p["S5"].box == p["S6"].box == tight_box(mask)


def test_strided_points_by_hand():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:6, 3:7] = True  # 16 pixels: fg[k] = (3 + k % 4, 2 + k // 4), stride 16 // 5 = 3
    prompt = make_prompt(mask, "S4", seed=0, object_key="sq", sampling="strided")
    centroid = (4.0, 3.0)  # (4.5, 3.5) truncated
    positives = [centroid, (6.0, 2.0), (5.0, 3.0), (4.0, 4.0), (3.0, 5.0)]  # fg[3], fg[6], fg[9], fg[12]
    # their box: extent 3 doubled about the centre -> x 1.5..7.5, y 0.5..6.5 -> int: cols 1..6, rows 0..5;
    # its 20 background pixels row-major, stride 4: indices 0, 4, 8, 12, 16
    negatives = [(1.0, 0.0), (5.0, 0.0), (3.0, 1.0), (1.0, 2.0), (1.0, 4.0)]
    assert list(prompt.point_coords) == positives + negatives
    assert prompt.point_labels == (1,) * 5 + (0,) * 5  # exactly five positives although 16 % 5 != 0


def test_strided_points_do_not_depend_on_the_seed():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:20, 8:25] = True
    a = make_prompt(mask, "S4", seed=1, object_key="x", sampling="strided")
    assert a.point_coords == make_prompt(mask, "S4", seed=2, object_key="y", sampling="strided").point_coords


def test_unknown_sampling_is_a_config_error():
    with pytest.raises(ConfigError, match="prompts.sampling must be one of random, strided; got 'grid'"):
        make_prompt(np.ones((4, 4), dtype=bool), "S2", seed=0, object_key="k", sampling="grid")
