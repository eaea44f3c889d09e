"""The next-click rule of iterative prompting on hand-made masks: error region, largest region, farthest point,
label, connectivity, the image edge as a boundary, and ties drawn by seed."""

import numpy as np
import pytest

from sam4med.prompts.clicks import (
    Click,
    click_seed,
    error_region,
    farthest_point,
    largest_component,
    next_click,
)


def block(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return mask


def test_the_largest_error_is_false_positive_so_the_click_is_negative_at_its_centre():
    gt = block((30, 30), (5, 14), (5, 14))  # 10 x 10
    pred = gt.copy()
    pred[5:15, 5:8] = False  # false negatives: 10 x 3 = 30 pixels
    pred |= block((30, 30), (18, 26), (18, 26))  # false positives: 9 x 9 = 81 pixels, centre (row 22, col 22)
    assert error_region(pred, gt).sum() == 30 + 81
    assert next_click(pred, gt, seed=0, object_key="o", click=2) == Click(22.0, 22.0, positive=False)


def test_the_largest_error_is_false_negative_so_the_click_is_positive_at_its_centre():
    gt = block((30, 30), (2, 12), (2, 14))  # 11 rows x 13 cols
    pred = block((30, 30), (2, 12), (2, 3))  # keeps the two left columns: false negatives 11 x 11, centre (7, 9)
    pred |= block((30, 30), (20, 22), (20, 22))  # a 3 x 3 false positive, smaller
    assert next_click(pred, gt, seed=0, object_key="o", click=2) == Click(9.0, 7.0, positive=True)


def test_an_empty_prediction_clicks_the_objects_centre_and_an_exact_one_gets_no_click():
    gt = block((21, 21), (5, 15), (5, 15))
    assert next_click(np.zeros_like(gt), gt, seed=0, object_key="o", click=2) == Click(10.0, 10.0, positive=True)
    assert next_click(gt.copy(), gt, seed=0, object_key="o", click=2) is None


def test_regions_are_8_connected_and_the_largest_wins():
    mask = block((12, 12), (0, 1), (0, 1)) | block((12, 12), (2, 3), (2, 3))  # two 2 x 2 touching at a corner
    mask |= block((12, 12), (8, 8), (0, 6))  # a line of 7 pixels, apart
    largest = largest_component(mask)
    assert largest.sum() == 8 and largest[0, 0] and largest[3, 3]  # 4-connected, the line (7 > 4) would win


def test_equal_regions_the_first_in_row_major_order_wins():
    mask = block((10, 10), (6, 8), (1, 3)) | block((10, 10), (1, 3), (6, 8))  # two 3 x 3 regions
    assert largest_component(mask)[2, 7] and not largest_component(mask)[7, 2]


def test_the_image_edge_is_a_boundary():
    band = block((30, 30), (0, 4), (0, 29))  # five rows along the top edge
    x, y = farthest_point(band, np.random.default_rng(0))
    assert y == 2  # the middle row, not the top row (which would be farthest from the band's inner edge)


def test_ties_are_drawn_by_seed_reproducibly_and_among_the_farthest_pixels_only():
    gt = block((20, 20), (5, 14), (5, 14))  # even sides: the four centre pixels tie
    ties = {(9.0, 9.0), (10.0, 9.0), (9.0, 10.0), (10.0, 10.0)}
    empty = np.zeros_like(gt)
    picks = {next_click(empty, gt, seed=0, object_key=f"o{k}", click=2) for k in range(40)}
    assert {(c.x, c.y) for c in picks} == ties  # every tied pixel drawn by some object, no other
    again = next_click(empty, gt, seed=0, object_key="o3", click=2)
    assert again == next_click(empty, gt, seed=0, object_key="o3", click=2)


def test_the_error_bounding_box_gives_the_point_of_the_whole_image():
    rng = np.random.default_rng(0)
    for case in range(30):  # blobs of random rectangles, ties frequent (even sides), at the image edge too
        gt, pred = np.zeros((2, 24, 31), dtype=bool)
        for mask in (gt, pred):
            for _ in range(3):
                r, c, h, w = rng.integers(0, 24), rng.integers(0, 31), rng.integers(1, 9), rng.integers(1, 9)
                mask[r : r + h, c : c + w] = True
        click = next_click(pred, gt, seed=0, object_key=f"o{case}", click=2)
        whole = farthest_point(largest_component(pred ^ gt), np.random.default_rng(click_seed(0, f"o{case}", 2)))
        assert (click.x, click.y) == whole and click.positive == bool(gt[int(whole[1]), int(whole[0])])


def test_an_empty_region_has_no_point():
    with pytest.raises(ValueError, match="empty region"):
        farthest_point(np.zeros((4, 4), dtype=bool), np.random.default_rng(0))


def test_a_click_round_trips_as_a_list():
    click = Click(3.0, 4.0, positive=False)
    assert click.to_list() == [3.0, 4.0, 0] and Click.from_list(click.to_list()) == click
