"""The prompt-noise rule (sam4med.prompts.perturb): distances, box edges, clipping, collapse, seeds."""

import math

import numpy as np
import pytest

from sam4med.prompts.perturb import Shift, ShiftLevel, apply_shift, draw_shift, move_box, shift_prompt, shift_seed
from sam4med.prompts.prompt import Prompt

SIZE = (200, 300)  # H, W: far from every coordinate below, so nothing is clipped unless a test wants it
POINTS = Prompt("S4", point_coords=((100.0, 80.0), (120.0, 90.0), (60.0, 50.0)), point_labels=(1, 1, 0), seed=7)
BOX = Prompt("S6", point_coords=((100.0, 80.0),), point_labels=(1,), box=(70.0, 60.0, 130.0, 110.0), seed=7)
BOXES = Prompt("M4", boxes=((40.0, 40.0, 80.0, 90.0), (150.0, 100.0, 190.0, 140.0)), seed=7)


def shifted(prompt: Prompt, level: tuple[float, float], repeat: int = 1, key: str = "img/lab/1", seed: int = 0):
    return shift_prompt(prompt, ShiftLevel(*level), seed=seed, repeat=repeat, object_key=key, size=SIZE)


def test_a_ten_pixel_shift_moves_every_point_by_exactly_ten_pixels_and_keeps_labels():
    out = shifted(POINTS, (10, 10))
    moved = out.prompt.points_array - POINTS.points_array
    np.testing.assert_allclose(np.hypot(moved[:, 0], moved[:, 1]), [10.0, 10.0, 10.0], atol=1e-9)
    assert out.prompt.point_labels == (1, 1, 0) and out.prompt.strategy == "S4" and out.prompt.seed == 7
    # each point has its own direction
    angles = np.arctan2(moved[:, 1], moved[:, 0])
    assert len(set(np.round(angles, 6))) == 3


def test_point_distances_lie_in_the_level():
    many = Prompt("M2", point_coords=((150.0, 100.0),) * 400, point_labels=(1,) * 400)
    out = shifted(many, (10, 20))
    moved = out.prompt.points_array - many.points_array
    distance = np.hypot(moved[:, 0], moved[:, 1])
    assert distance.min() >= 10.0 and distance.max() < 20.0
    assert distance.max() - distance.min() > 8.0  # spread over the level, not one value
    # directions cover every quadrant
    quadrants = {(bool(dx > 0), bool(dy > 0)) for dx, dy in moved}
    assert quadrants == {(True, True), (True, False), (False, True), (False, False)}


def test_a_ten_pixel_box_shift_moves_each_edge_by_ten_pixels_in_the_drawn_direction():
    out = shifted(BOX, (10, 10))
    offsets = np.asarray(out.prompt.box) - np.asarray(BOX.box)
    np.testing.assert_allclose(np.abs(offsets), [10.0] * 4)
    np.testing.assert_allclose(offsets, out.shift.boxes[0])  # the edge moves as drawn (sign = direction)
    # the box's point moves too, by 10 px
    assert math.isclose(math.dist(out.prompt.point_coords[0], BOX.point_coords[0]), 10.0, abs_tol=1e-9)


def test_box_edges_move_outward_and_inward_by_hand():
    # x0 outward (-10), y0 inward (+10), x1 outward (+10), y1 inward (-10)
    moved = move_box((70.0, 60.0, 130.0, 110.0), np.array([-10.0, 10.0, 10.0, -10.0]), SIZE)
    assert moved == (60.0, 70.0, 140.0, 100.0)  # wider by 20, shorter by 20
    # both x edges the same way: the box moves right by 10 with its width kept
    assert move_box((70.0, 60.0, 130.0, 110.0), np.array([10.0, 0.0, 10.0, 0.0]), SIZE) == (80.0, 60.0, 140.0, 110.0)


def test_edge_directions_are_drawn_both_ways():
    many = Prompt("M4", boxes=((100.0, 80.0, 200.0, 150.0),) * 100)
    shift = draw_shift(many, ShiftLevel(10, 20), seed=3)
    assert shift.boxes.shape == (100, 4)
    assert (np.abs(shift.boxes) >= 10).all() and (np.abs(shift.boxes) < 20).all()
    share_outward_x0 = float((shift.boxes[:, 0] < 0).mean())
    assert 0.3 < share_outward_x0 < 0.7


def test_every_box_of_m4_is_shifted_on_its_own():
    out = shifted(BOXES, (5, 5))
    assert out.prompt.box is None and len(out.prompt.boxes) == 2
    for before, after, drawn in zip(BOXES.boxes, out.prompt.boxes, out.shift.boxes, strict=True):
        np.testing.assert_allclose(np.asarray(after) - np.asarray(before), drawn)
        np.testing.assert_allclose(np.abs(drawn), [5.0] * 4)
    assert not np.array_equal(out.shift.boxes[0], out.shift.boxes[1])


def test_points_and_boxes_are_clipped_to_the_image():
    h, w = SIZE
    corner = Prompt("S2", point_coords=((1.0, 198.0),), point_labels=(1,))
    clipped = apply_shift(corner, Shift(0, np.array([[-10.0, 10.0]]), np.zeros((0, 4))), SIZE)
    assert clipped.point_coords == ((0.0, float(h - 1)),)
    edge = Prompt("S5", box=(5.0, 5.0, 295.0, 195.0))
    out = apply_shift(edge, Shift(0, np.zeros((0, 2)), np.array([[-10.0, -10.0, 10.0, 10.0]])), SIZE)
    assert out.box == (0.0, 0.0, float(w - 1), float(h - 1))
    # a box pushed off the image keeps one pixel at the border
    off = apply_shift(edge, Shift(0, np.zeros((0, 2)), np.array([[400.0, 0.0, 400.0, 0.0]])), SIZE)
    assert off.box == (float(w - 1), 5.0, float(w - 1), 195.0)


def test_crossed_edges_collapse_to_their_midpoint():
    # a 6 px wide box whose edges both move inward by 10: x0 = 80, x1 = 66 cross; both become 73
    out = move_box((70.0, 60.0, 76.0, 110.0), np.array([10.0, 0.0, -10.0, 0.0]), SIZE)
    assert out == (73.0, 60.0, 73.0, 110.0)
    tall = move_box((70.0, 60.0, 130.0, 64.0), np.array([0.0, 12.0, 0.0, -12.0]), SIZE)
    assert tall == (70.0, 62.0, 130.0, 62.0)


def test_level_zero_leaves_the_prompt_unchanged():
    for prompt in (POINTS, BOX, BOXES):
        assert shifted(prompt, (0, 0)).prompt == prompt


def test_same_seed_same_shift_other_repeat_level_or_seed_another():
    first, again = shifted(BOX, (10, 20)), shifted(BOX, (10, 20))
    assert first.prompt == again.prompt and first.shift.seed == again.shift.seed
    for other in (shifted(BOX, (10, 20), repeat=2), shifted(BOX, (20, 30)), shifted(BOX, (10, 20), seed=1)):
        assert other.prompt != first.prompt
    assert shifted(BOX, (10, 20), key="img/lab/2").prompt != first.prompt


def test_the_seed_depends_on_strategy_and_level_values_not_their_spelling():
    level = ShiftLevel(10, 20)
    base = shift_seed(0, level=level, repeat=1, strategy="S5", object_key="a")
    assert shift_seed(0, level=ShiftLevel(10.0, 20.0), repeat=1, strategy="S5", object_key="a") == base
    assert shift_seed(0, level=level, repeat=1, strategy="S6", object_key="a") != base


def test_the_draw_does_not_depend_on_the_order_objects_are_visited():
    keys = [f"img{k}/lab/1" for k in range(5)]
    forward = {k: shifted(BOX, (10, 20), key=k).prompt for k in keys}
    backward = {k: shifted(BOX, (10, 20), key=k).prompt for k in reversed(keys)}
    assert forward == backward
    assert len({p.box for p in forward.values()}) == 5


@pytest.mark.parametrize("low, high", [(-1, 5), (10, 5), (0, math.inf), (math.nan, 1)])
def test_a_bad_level_is_refused(low, high):
    with pytest.raises(ValueError, match="0 <= low <= high"):
        ShiftLevel(low, high)


def test_level_label_and_midpoint():
    assert ShiftLevel(10, 20).label == "10-20" and ShiftLevel(10, 20).midpoint == 15.0
    assert ShiftLevel(2.5, 7.5).label == "2.5-7.5"
