"""tools/model_defects.py: the measurements behind issue #16's defect figures, on images of known defects."""

import numpy as np
import pytest

import model_defects  # noqa: E402  (tools/, on the tests' pythonpath)
from rawisp.colour import srgb_decode


def test_periodic_peak_to_peak_reads_a_known_pattern():
    img = np.full((256, 256, 3), 1000.0)
    img[::2, ::2, 1] += 5.0  # +5 on one site of each 2x2 block, green only: cells 1000 and 1005 at period 2
    assert model_defects.periodic_peak_to_peak(img, 2) == pytest.approx(5 / 1001.25 * 100, rel=1e-6)
    assert model_defects.periodic_peak_to_peak(img, 4) == pytest.approx(5 / 1001.25 * 100, rel=1e-6)
    img[::8, ::8, 0] += 40.0  # a period-8 dot in red: seen at period 8 only (at 2 and 4 it is averaged)
    assert model_defects.periodic_peak_to_peak(img, 8) == pytest.approx(40 / 1000.625 * 100, rel=1e-6)
    assert model_defects.periodic_peak_to_peak(np.full((128, 128, 3), 7.0), 8) == 0.0


def test_count_specks_counts_isolated_dark_pixels_per_megapixel():
    img = np.full((500, 400, 3), 60, np.uint8)  # 0.2 MP
    img[100, 100] = 50  # 10 levels below: a speck, not deep
    img[200, 300] = 40  # 20 levels below: a deep speck
    img[300, 50] = 55  # 5 levels below: not a speck
    img[400, 200:202] = 40  # two dark neighbours: a line, not an isolated speck
    assert model_defects.count_specks(img) == pytest.approx(2 / 0.2)
    assert model_defects.count_specks(img, model_defects.DEEP) == pytest.approx(1 / 0.2)


def test_flat_and_chart_are_what_they_say():
    assert srgb_decode(model_defects.flat(0.02)) == pytest.approx(np.full((256, 256, 3), 0.02), abs=1e-9)
    chart = model_defects.saturated_chart(patch=8)
    assert chart.shape == (8, 13 * 8, 3)
    colours = chart[0, ::8]
    assert np.allclose(colours.max(axis=1)[:12], 0.85) and np.allclose(colours.min(axis=1)[:12], 0.085)
    assert colours[-1].tolist() == [0.95, 0.9, 0.05]  # the saturated yellow of the issue
