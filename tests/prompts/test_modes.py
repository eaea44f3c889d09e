"""The mode prompts M1-M5 (Mazurowski et al.) on hand-made masks: regions, points, boxes, seeds, storage."""

import json

import numpy as np
import pytest
from scipy import ndimage

from sam4med.errors import DataError
from sam4med.prompts.generate import make_prompt, tight_box
from sam4med.prompts.modes import MIN_REGION_AREA, MODES, components, farthest_point, regions
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.store import PromptStore, outside


def squares(shape, *corners_and_sides):
    """A mask with a filled square per (row, col, side)."""
    mask = np.zeros(shape, dtype=bool)
    for row, col, side in corners_and_sides:
        mask[row : row + side, col : col + side] = True
    return mask


@pytest.fixture
def four_parts():
    """Four regions of 49, 25, 16 and 81 pixels (scan order), all above the tiny-region limit."""
    return squares((40, 60), (1, 1, 7), (1, 20, 5), (1, 40, 4), (20, 10, 9))


def test_point_is_the_distance_transform_maximum():
    mask = squares((20, 30), (2, 10, 7))  # a 7 x 7 square: its centre (13, 5) is 4 pixels from the outside
    assert farthest_point(mask, np.random.default_rng(0)) == (13.0, 5.0)
    assert make_prompt(mask, "M1", seed=0, object_key="a").point_coords == ((13.0, 5.0),)


def test_point_is_farthest_from_the_boundary_by_brute_force():
    rng = np.random.default_rng(5)
    blob = ndimage.binary_opening(rng.random((24, 24)) > 0.35, iterations=1)
    region = components(blob, limit=1)[0]
    x, y = farthest_point(region, np.random.default_rng(1))
    outside_pixels = np.argwhere(~np.pad(region, 1)) - 1  # the border counts as boundary
    inside = np.argwhere(region)

    def depth(r, c):
        return np.sqrt(((outside_pixels - [r, c]) ** 2).sum(axis=1)).min()

    assert region[int(y), int(x)]
    assert depth(y, x) == pytest.approx(max(depth(r, c) for r, c in inside))


def test_the_image_border_counts_as_boundary():
    mask = squares((10, 20), (0, 0, 5))  # a 5 x 5 square in the corner
    assert farthest_point(mask, np.random.default_rng(0)) == (2.0, 2.0)  # not (0, 0), 5 pixels from background


def test_regions_are_largest_first_at_most_three(four_parts):
    found = components(four_parts)
    assert [int(r.sum()) for r in found] == [81, 49, 25, 16]
    assert [int(r.sum()) for r in regions(four_parts)] == [81, 49, 25]
    m2 = make_prompt(four_parts, "M2", seed=0, object_key="a")
    assert m2.point_coords == ((14.0, 24.0), (4.0, 4.0), (22.0, 3.0)) and m2.point_labels == (1, 1, 1)
    m4 = make_prompt(four_parts, "M4", seed=0, object_key="a")
    assert m4.box is None and m4.boxes == ((10.0, 20.0, 18.0, 28.0), (1.0, 1.0, 7.0, 7.0), (20.0, 1.0, 24.0, 5.0))
    assert make_prompt(four_parts, "M1", seed=0, object_key="a").point_coords == m2.point_coords[:1]
    assert make_prompt(four_parts, "M3", seed=0, object_key="a").box == m4.boxes[0]
    assert make_prompt(four_parts, "M5", seed=0, object_key="a").box == tight_box(four_parts) == (1.0, 1.0, 43.0, 28.0)


def test_equal_areas_keep_scan_order():
    mask = squares((20, 30), (10, 2, 4), (2, 20, 4))  # equal areas: the upper one comes first
    assert [tight_box(r) for r in components(mask)] == [(20.0, 2.0, 23.0, 5.0), (2.0, 10.0, 5.0, 13.0)]


def test_regions_are_eight_connected():
    mask = squares((20, 20), (2, 2, 4), (6, 6, 4))  # touching by a corner only
    assert len(components(mask)) == 1
    assert make_prompt(mask, "M4", seed=0, object_key="a").boxes == ((2.0, 2.0, 9.0, 9.0),)
    assert ndimage.label(mask)[1] == 2  # 4-connected, it would be two


def test_tiny_regions_are_left_out_unless_there_is_nothing_else():
    mask = squares((20, 30), (2, 2, 6), (15, 20, 1))  # 36 pixels and 1 pixel
    mask[15, 25:27] = True  # a second tiny part of 2 pixels
    assert [int(r.sum()) for r in components(mask)] == [36, 2, 1]
    assert [int(r.sum()) for r in regions(mask)] == [36]
    assert len(make_prompt(mask, "M2", seed=0, object_key="a").point_coords) == 1
    assert len(make_prompt(mask, "M4", seed=0, object_key="a").boxes) == 1
    only_tiny = squares((20, 30), (2, 2, 2), (10, 10, 1))  # 4 and 1 pixels, both under the limit
    assert MIN_REGION_AREA > 4
    assert [int(r.sum()) for r in regions(only_tiny)] == [4]
    assert make_prompt(only_tiny, "M4", seed=0, object_key="a").boxes == ((2.0, 2.0, 3.0, 3.0),)
    square = {(2.0, 2.0), (3.0, 2.0), (2.0, 3.0), (3.0, 3.0)}  # all four pixels are 1 from the boundary
    assert make_prompt(only_tiny, "M2", seed=0, object_key="a").point_coords[0] in square


def test_ties_are_broken_by_the_seed_deterministically():
    mask = np.zeros((20, 40), dtype=bool)
    mask[5:9, 5:35] = True  # rows 6 and 7, columns 6..33: all 2 pixels from the boundary
    ties = {(float(c), float(r)) for r in (6, 7) for c in range(6, 34)}
    points = {s: make_prompt(mask, "M1", seed=s, object_key="a").point_coords[0] for s in range(12)}
    assert set(points.values()) <= ties and len(set(points.values())) > 3
    assert all(make_prompt(mask, "M1", seed=s, object_key="a").point_coords[0] == p for s, p in points.items())
    other_object = {make_prompt(mask, "M1", seed=0, object_key=f"o{i}").point_coords[0] for i in range(12)}
    assert len(other_object) > 3  # the object key takes part in the seed, as for S2-S6
    assert make_prompt(mask, "M1", seed=0, object_key="a").seed == make_prompt(mask, "S2", seed=0, object_key="a").seed


def test_every_mode_is_a_prompt_strategy_and_an_empty_mask_is_refused():
    assert list(MODES) == ["M1", "M2", "M3", "M4", "M5"]
    with pytest.raises(ValueError, match="empty mask"):
        make_prompt(np.zeros((5, 5), dtype=bool), "M2", seed=0, object_key="a")
    with pytest.raises(ValueError, match="M6"):
        make_prompt(np.ones((5, 5), dtype=bool), "M6", seed=0, object_key="a")


def test_a_multi_box_prompt_round_trips_and_old_prompts_keep_their_form(tmp_path, four_parts):
    s5 = make_prompt(four_parts, "S5", seed=0, object_key="a")
    assert set(s5.to_dict()) == {"strategy", "point_coords", "point_labels", "box", "seed"}  # no "boxes" key
    m4 = make_prompt(four_parts, "M4", seed=0, object_key="a")
    assert m4.to_dict()["boxes"] == [list(b) for b in m4.boxes] and m4.to_dict()["box"] is None
    assert Prompt.from_dict(json.loads(json.dumps(m4.to_dict()))) == m4
    assert [p.box for p in m4.decoded()] == list(m4.boxes) and m4.all_boxes == m4.boxes
    path = tmp_path / "prompts.json"
    store = PromptStore(seed=0, read_from=path, write_to=path)
    made = {s: store.get(four_parts, s, "img/m/1") for s in MODES}
    store.save()
    again = PromptStore(seed=0, read_from=path, write_to=path, only_stored=True)
    assert {s: again.get(four_parts, s, "img/m/1") for s in MODES} == made
    assert json.loads(path.read_text())["prompts"]["M4|img/m/1"]["boxes"] == [list(b) for b in m4.boxes]


def test_a_stored_box_outside_the_image_is_found_among_several():
    prompt = Prompt("M4", boxes=((0.0, 0.0, 3.0, 3.0), (5.0, 5.0, 12.0, 9.0)))
    assert outside(prompt, (10, 10)) == "box (5, 5, 12, 9)"
    assert outside(prompt, (10, 13)) is None
    with pytest.raises(ValueError, match="not both"):
        Prompt("M4", box=(0.0, 0.0, 1.0, 1.0), boxes=((0.0, 0.0, 1.0, 1.0),))


def test_a_stored_multi_box_prompt_of_another_mask_is_refused(tmp_path, four_parts):
    path = tmp_path / "prompts.json"
    store = PromptStore(seed=0, write_to=path)
    store.get(four_parts, "M4", "a")
    store.save()
    with pytest.raises(DataError, match="another mask"):
        PromptStore(seed=0, read_from=path).get(four_parts[::-1].copy(), "M4", "a")
