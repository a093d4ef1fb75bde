"""The effective tile margin: the edge-error profile of a tile against the whole frame."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from rawisp.measure.margin import edge_error_profile, effective_margin, probe_frames


def box_model(radius: int):
    """A toy 'network' whose receptive field is exactly ``radius`` packed pixels: a box mean of
    the first plane (zero beyond the input, like a convolution's padding), upsampled 2x. Exact
    on integer-valued input (no rounding), so the profile is exactly zero where it must be."""

    def run(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x[0].astype(np.float64), radius)
        blurred = sliding_window_view(padded, (2 * radius + 1,) * 2).sum(axis=(2, 3))
        full = np.repeat(np.repeat(blurred, 2, axis=0), 2, axis=1)
        return np.stack([full] * 3).astype(np.float32)

    return run


@pytest.mark.parametrize("radius", [3, 10])
def test_profile_of_a_box_is_zero_from_its_radius_on(radius):
    frame = np.random.default_rng(0).integers(1, 10, (8, 96, 96)).astype(np.float32)
    profile = edge_error_profile(box_model(radius), frame, tile=48, offset=24)
    assert len(profile) == 24
    assert (profile[radius:] == 0).all() and (profile[:radius] > 0).all()
    assert (np.diff(profile) <= 0).all()  # a larger margin never errs more
    assert effective_margin(profile, 1e-9, stride=4) == -(-radius // 4) * 4


def test_effective_margin_needs_the_error_to_fall_below_the_tolerance():
    with pytest.raises(ValueError, match="never falls below"):
        effective_margin(np.full(10, 1e-3), 1e-4, stride=4)


def test_probe_frames_are_network_inputs_at_three_noise_levels():
    frames = probe_frames(side=64, seeds=(0,))
    assert len(frames) == 3 and all(f.shape == (8, 64, 64) and f.dtype == np.float32 for f in frames)
    assert all(f[:4].max() <= 1.0 and f[:4].mean() > 0.05 for f in frames)
    assert frames[0][4:].max() == 0 and 0 < frames[1][4:].mean() < frames[2][4:].mean()  # clean, mid, high
