"""Object factors on hand-drawn masks and images, each value worked out by hand."""

import math
import time

import cv2
import numpy as np
import pytest

from sam4med.metrics.object_factors import (
    FourierRule,
    PixelBox,
    area,
    aspect_ratio,
    enlarged_box,
    fourier_order,
    grey,
    intensity_difference,
    tight_box,
)

ROWS, COLS = np.mgrid[:256, :256]


def disc(radius: float, centre: tuple[int, int] = (128, 128)) -> np.ndarray:
    return (ROWS - centre[0]) ** 2 + (COLS - centre[1]) ** 2 <= radius**2


def star(arms: int = 5, inner: float = 40, outer: float = 110) -> np.ndarray:
    """A smooth star: radius from ``inner`` to ``outer`` with ``arms`` arms."""
    angle, radius = np.arctan2(ROWS - 128, COLS - 128), np.hypot(ROWS - 128, COLS - 128)
    return radius <= inner + (outer - inner) * (0.5 + 0.5 * np.cos(arms * angle))


def spiral() -> np.ndarray:
    """An 8 px wide Archimedean spiral of two turns."""
    mask = np.zeros((256, 256), np.uint8)
    t = np.linspace(0, 4 * np.pi, 400)
    points = np.stack([128 + (10 + 9 * t) * np.cos(t), 128 + (10 + 9 * t) * np.sin(t)], axis=1).astype(np.int32)
    cv2.polylines(mask, [points], False, 1, thickness=8)
    return mask.astype(bool)


def rectangle(y0: int, x0: int, y1: int, x1: int, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Rows y0..y1 and columns x0..x1 (inclusive) set."""
    mask = np.zeros(shape, bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def test_area_and_aspect_ratio_of_rectangles():
    assert area(rectangle(10, 20, 19, 59)) == 10 * 40
    assert aspect_ratio(rectangle(10, 20, 19, 59)) == pytest.approx(10 / 40)
    assert aspect_ratio(rectangle(5, 5, 34, 14)) == pytest.approx(10 / 30)  # tall: still short / long
    assert aspect_ratio(rectangle(0, 0, 7, 7)) == 1.0
    assert aspect_ratio(rectangle(3, 3, 3, 3)) == 1.0  # one pixel
    two = rectangle(0, 0, 1, 1) | rectangle(10, 30, 11, 31)  # two parts: the box holds both
    assert area(two) == 8
    assert tight_box(two) == PixelBox(0, 0, 11, 31)
    assert aspect_ratio(two) == pytest.approx(12 / 32)


def test_empty_mask_is_refused():
    with pytest.raises(ValueError, match="empty"):
        area(np.zeros((4, 4), bool))


def test_enlarged_box_by_hand():
    box = PixelBox(20, 10, 39, 39)  # 20 rows, 30 columns
    assert enlarged_box(box, 0.1, (100, 100)) == PixelBox(18, 7, 41, 42)  # 2 rows, 3 columns each side
    assert enlarged_box(box, 0.0, (100, 100)) == box
    assert enlarged_box(PixelBox(0, 0, 4, 4), 0.1, (5, 5)) == PixelBox(0, 0, 4, 4)  # ceil(0.5) = 1, clipped
    assert enlarged_box(PixelBox(1, 1, 3, 3), 0.1, (10, 10)) == PixelBox(0, 0, 4, 4)  # 3 px: ceil(0.3) = 1


def test_intensity_difference_object_200_surround_50():
    image = np.zeros((100, 100, 3), np.uint8)
    mask = rectangle(20, 10, 39, 39, (100, 100))
    image[mask] = 200
    image[18:42, 7:43][~mask[18:42, 7:43]] = 50  # the enlarged box (rows 18-41, columns 7-42) around it
    assert intensity_difference(image, mask, 0.1) == pytest.approx(150.0)
    # a darker object on a brighter ground gives the same absolute difference
    assert intensity_difference(255 - image, mask, 0.1) == pytest.approx(150.0)
    # outside the enlarged box nothing counts: with ratio 0.1 a bright frame beyond it changes nothing
    image[:18] = 255
    assert intensity_difference(image, mask, 0.1) == pytest.approx(150.0)
    # a larger ratio takes the frame in: rows 16-17 (2 rows x 34 columns of 255) join the surround
    wider = enlarged_box(tight_box(mask), 0.2, (100, 100))
    assert wider == PixelBox(16, 4, 43, 45)
    window = image[16:44, 4:46, 0].astype(float)
    expected = 200 - window[~mask[16:44, 4:46]].mean()
    assert intensity_difference(image, mask, 0.2) == pytest.approx(abs(expected))


def test_intensity_difference_on_grey_value_and_without_surround():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 30  # grey value: the mean of the channels, 10 everywhere
    mask = rectangle(2, 2, 5, 5, (8, 8))
    image[mask] = (90, 90, 0)  # grey 60 inside
    assert grey(image)[0, 0] == 10.0
    assert intensity_difference(image, mask) == pytest.approx(50.0)
    assert math.isnan(intensity_difference(image, np.ones((8, 8), bool)))  # the object is the whole image


def test_disc_has_a_low_order_and_complex_shapes_high_ones():
    circle = fourier_order(disc(60))
    assert circle.raw == 1 and circle.dice > 0.99 and circle.order <= 3
    assert circle.order == pytest.approx(1 + 2 * 100 * (1 - circle.dice))
    star_order = fourier_order(star())
    spiral_order = fourier_order(spiral())
    assert star_order.order > 20 and spiral_order.order > 100
    assert circle.order < star_order.order < spiral_order.order
    assert circle.parts == star_order.parts == spiral_order.parts == 1


def blob() -> np.ndarray:
    """A lumpy closed shape without rotational symmetry: every harmonic up to 7 adds to it."""
    angle, radius = np.arctan2(ROWS - 128, COLS - 128), np.hypot(ROWS - 128, COLS - 128)
    edge = 70 + 12 * np.cos(2 * angle + 1) + 10 * np.cos(3 * angle) + 8 * np.cos(4 * angle + 2)
    return radius <= edge + 6 * np.cos(5 * angle + 0.5) + 5 * np.cos(7 * angle + 1.3)


def test_stop_rules():
    shape = blob()
    # the Dice of each order, read from searches capped there (threshold 1 is never passed, gains are all kept)
    dices = [
        fourier_order(shape, FourierRule(dice_threshold=1.0, min_gain=0.0, max_order=k)).dice for k in range(1, 10)
    ]
    assert all(fourier_order(shape, FourierRule(1.0, 0.0, max_order=k)).raw == k for k in (1, 3, 9))
    # default: the first order whose Dice is above 0.97
    first_above = next(k for k, d in enumerate(dices, start=1) if d > 0.97)
    found = fourier_order(shape)
    assert found.raw == first_above and found.dice == dices[first_above - 1] and first_above > 2
    # the gain rule: with no threshold, the first order gaining less than 0.001 over the one before
    first_stall = next(k for k in range(2, 10) if dices[k - 1] - dices[k - 2] < 0.001)
    assert fourier_order(shape, FourierRule(dice_threshold=1.0, max_order=40)).raw == first_stall
    assert fourier_order(shape, FourierRule(dice_threshold=1.0, min_gain=0.0, max_order=40)).raw > first_stall
    # the final order
    assert found.order == pytest.approx(found.raw + 2 * 100 * (1 - found.dice))
    assert fourier_order(shape, FourierRule(penalty=0.0)).order == found.raw
    assert fourier_order(shape, FourierRule(dice_threshold=0.5)).raw == 1  # above the threshold at once


def test_several_parts_holes_and_tiny_objects():
    one = disc(30, (64, 64))
    two = one | disc(30, (190, 190))
    single, double = fourier_order(one), fourier_order(two)
    assert double.parts == 2 and double.raw == single.raw == 1 and double.dice > 0.99
    ring = disc(60) & ~disc(20)  # the hole is filled: a ring's order is the disc's
    assert fourier_order(ring) == fourier_order(disc(60))
    speck = two | rectangle(0, 250, 1, 251, (256, 256))  # a 4 px part is not fitted
    assert fourier_order(speck) == double
    tiny = fourier_order(rectangle(5, 5, 6, 6))  # every part under min_part_area px: no order
    assert tiny.parts == 0 and tiny.raw == 0 and math.isnan(tiny.order) and math.isnan(tiny.dice)
    assert fourier_order(rectangle(5, 5, 6, 6), FourierRule(min_part_area=4)).parts == 1


def test_fourier_order_is_fast():
    shapes = [disc(127), star(), spiral(), blob()]
    for shape in shapes:
        fourier_order(shape)  # warm up
        start = time.perf_counter()
        fourier_order(shape)
        assert time.perf_counter() - start < 0.1
