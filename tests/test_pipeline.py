"""Acceptance tests of the classical pipeline on synthetic DNGs with known ground truth.

decode -> normalise -> classical (bilinear) -> render, in-process and through ``rawisp develop``:
accuracy against the sRGB the DNG was made from, Bayer packing, per-site black levels, clipped
highlights, orientation.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    OTHER_CAM_FROM_SRGB,
    natural_image,
    patch_image,
    patch_means,
    read_image,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from rawisp.colour import BAYER_PATTERNS
from rawisp.engines.classical import BilinearRows, Classical
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.measure.metrics import psnr
from rawisp.stages.normalise import normalise, pack, plane_values, rggb_padding, unpack
from rawisp.stages.render import render

BORDER = 10
# (cfa, black, white, camera matrix, as-shot neutral, odd/even size): 12- and 14-bit, per-site blacks
CASES = [
    ("RGGB", 256, 4095, synth.DEFAULT_CAM_FROM_SRGB, (0.55, 1.0, 0.75), (121, 163)),
    ("BGGR", 512, 16383, OTHER_CAM_FROM_SRGB, (0.45, 1.0, 0.62), (120, 161)),
    ("GRBG", 2048, 16383, synth.DEFAULT_CAM_FROM_SRGB, (0.70, 1.0, 0.50), (119, 160)),
    ("GBRG", [250, 262, 255, 258], 4095, OTHER_CAM_FROM_SRGB, (0.60, 1.0, 0.80), (123, 165)),
]
CASE_IDS = [f"{c[0]}-{c[2]}" for c in CASES]


def develop(path, tone: str = "linear") -> np.ndarray:
    """The classical pipeline in-process: DNG -> upright sRGB uint8 (no file written)."""
    from rawisp.io.metadata import apply_orientation

    raw = decode(path)
    out = render(Classical()(normalise(raw)), raw.srgb_from_cam, tone=tone)
    return apply_orientation(out, raw.orientation)


def dng_kwargs(case) -> dict:
    cfa, black, white, cam, neutral, _ = case
    return dict(cfa=cfa, black=black, white=white, cam_from_srgb=cam, neutral=neutral)


# --- accuracy against the ground truth ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_natural_image_psnr_in_process(make_dng, case):
    h, w = case[5]
    srgb = natural_image(h, w, seed=1)
    path, _ = make_dng("n.dng", srgb, **dng_kwargs(case))
    out = develop(path)
    assert out.shape == srgb.shape and out.dtype == np.uint8
    value = psnr(out, srgb, border=BORDER)
    assert value >= 29.0, f"{case[0]} {case[2]}: PSNR {value:.2f} dB"


def test_natural_image_psnr_through_cli(cli, make_dng, tmp_path):
    """All four cases in one ``rawisp develop --engine classical --tone linear --format png`` run."""
    truths = {}
    for i, case in enumerate(CASES):
        h, w = case[5]
        srgb = natural_image(h, w, seed=10 + i)
        path, _ = make_dng(f"in/{case[0]}.dng", srgb, **dng_kwargs(case))
        truths[path.stem] = srgb
    result = cli("develop", "--engine", "classical", "--tone", "linear", "--format", "png",
                 tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    for name, srgb in truths.items():
        out = read_image(tmp_path / "out" / f"{name}.png")
        assert out.shape == srgb.shape
        value = psnr(out, srgb, border=BORDER)
        assert value >= 29.0, f"{name} (cli): PSNR {value:.2f} dB"


def test_ideal_reconstruction_renders_back_to_the_input(make_dng):
    """Rendering the ground-truth camera RGB gives the sRGB input back (only dither differs)."""
    srgb = natural_image(64, 80, seed=3)
    path, truth = make_dng("t.dng", srgb, cfa="GRBG", cam_from_srgb=OTHER_CAM_FROM_SRGB)
    raw = decode(path)
    out = render(truth, raw.srgb_from_cam, tone="linear").astype(np.float64)
    err = out - srgb * 255
    assert np.abs(err).max() <= 1.01 and abs(err.mean()) < 0.05


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_flat_patches_mean_colour_error(make_dng, case):
    srgb, colours = patch_image()
    path, _ = make_dng("p.dng", srgb, **dng_kwargs(case))
    out = develop(path)
    err = np.abs(patch_means(out) - colours)  # 8-bit units
    assert err.max() < 1.0, f"{case[0]} {case[2]}: mean colour error max {err.max():.3f}, mean {err.mean():.3f} /255"


@pytest.mark.parametrize("fmt", ["png", "png16"])
def test_flat_patches_through_cli(cli, make_dng, tmp_path, fmt):
    """The same through ``rawisp develop``; the 16-bit PNG holds the same colours, finer."""
    from test_write import _read_png16

    srgb, colours = patch_image()
    path, _ = make_dng("p.dng", srgb, cfa="GBRG", black=[250, 262, 255, 258], white=4095,
                       cam_from_srgb=OTHER_CAM_FROM_SRGB)
    result = cli("develop", "--engine", "classical", "--tone", "linear", "--format", fmt, path,
                 "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out" / "p.png"
    pixels = _read_png16(out) / 257.0 if fmt == "png16" else read_image(out)  # 8-bit units
    err = np.abs(patch_means(pixels) - colours)
    assert err.max() < 1.0, f"{fmt} (cli): mean colour error max {err.max():.3f} /255"


# --- packing ---------------------------------------------------------------------------------------


def _site_labels(cfa: str, h: int, w: int) -> np.ndarray:
    """Per-pixel plane index of each site: 0 R, 1 G on R's row (G1), 2 G on B's row (G2), 3 B."""
    tile = np.array([[0, 0], [0, 0]])
    r_row = cfa.index("R") // 2
    for site, colour in enumerate(cfa):
        y, x = divmod(site, 2)
        tile[y, x] = {"R": 0, "B": 3}.get(colour, 1 if y == r_row else 2)
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(BAYER_PATTERNS), st.integers(2, 40), st.integers(2, 40), st.integers(0, 2**32 - 1), st.data())
def test_bilinear_rows_on_demand_equal_the_whole_frame(cfa, h, w, seed, data):
    """Any row slice of BilinearRows (any CFA phase, odd sizes, slices past the end) is exactly
    those rows of the whole-frame classical development."""
    from rawisp.stages.normalise import Packed

    planes, offset = pack(np.random.default_rng(seed).random((h, w), dtype=np.float32), cfa)
    packed = Packed(planes=planes, gains=np.ones(4, np.float32), noise=None, offset=offset, shape=(h, w))
    whole, lazy = Classical(threads=2)(packed), BilinearRows(packed)
    assert lazy.shape == whole.shape
    y0 = data.draw(st.integers(0, h - 1))
    y1 = data.draw(st.integers(y0 + 1, h + 5))
    np.testing.assert_array_equal(lazy[y0:y1], whole[y0:y1])


@pytest.mark.parametrize("fmt", ["jpeg", "tiff16"])
def test_streamed_classical_develop_equals_rendering_the_whole_frame(make_dng, tmp_path, fmt):
    """develop_file renders the classical engine strip by strip from BilinearRows: the pixels are
    those of rendering the whole reconstructed frame (same dither), for 8- and 16-bit output."""
    from rawisp.pipeline.compose import RenderOptions, render_picture
    from rawisp.pipeline.files import develop_file

    path, _ = make_dng("s.dng", natural_image(700, 523, seed=4), cfa="GBRG", orientation=6)
    options = RenderOptions(fmt=fmt, threads=2)
    result = develop_file(path, tmp_path / f"s.{'jpg' if fmt == 'jpeg' else 'tif'}", Classical(2), options)
    assert "reconstruct" not in result.seconds and result.seconds["render"] > 0
    raw = decode(path)
    packed = normalise(raw)
    streamed = render_picture(raw, Classical(2).rows(packed), options)
    np.testing.assert_array_equal(streamed, render_picture(raw, Classical(2)(packed), options))
    if fmt == "tiff16":  # lossless: the file holds exactly these pixels
        import tifffile

        np.testing.assert_array_equal(tifffile.imread(result.output), streamed)


class WholeFrame:
    """The classical engine without its strip-by-strip capability: reconstructs whole frames only."""

    name, version = "whole-frame", "bilinear"

    def __call__(self, packed):
        return Classical(1)(packed)


@pytest.mark.parametrize("engine,stages", [
    (Classical(1), ["decode", "normalise", "render", "write"]),  # streamed: reconstructed inside render
    (WholeFrame(), ["decode", "normalise", "reconstruct", "render", "write"]),
])
def test_the_timing_hook_hears_every_stage_in_order(make_dng, tmp_path, engine, stages):
    from rawisp.pipeline.compose import RenderOptions, Stopwatch
    from rawisp.pipeline.files import develop_file

    path, _ = make_dng("t.dng", natural_image(40, 56, seed=1))
    heard = []
    watch = Stopwatch(lambda stage, seconds: heard.append((stage, seconds)))
    result = develop_file(path, tmp_path / "t.png", engine, RenderOptions(fmt="png", threads=1), watch)
    assert [stage for stage, _ in heard] == stages
    assert all(seconds >= 0 for _, seconds in heard)
    assert result.seconds == dict(heard)


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(BAYER_PATTERNS), st.integers(2, 25), st.integers(2, 25), st.integers(0, 2**32 - 1))
def test_pack_unpack_exact_inverse(cfa, h, w, seed):
    mosaic = np.random.default_rng(seed).integers(0, 65536, (h, w), dtype=np.uint16)
    planes, offset = pack(mosaic, cfa)
    assert planes.shape == (4, (h + 1 + offset[0]) // 2, (w + 1 + offset[1]) // 2)
    assert planes.dtype == mosaic.dtype
    np.testing.assert_array_equal(unpack(planes, offset, (h, w)), mosaic)
    # every plane holds only its own colour, padding included (reflection keeps the CFA)
    labels, _ = pack(_site_labels(cfa, h, w), cfa)
    for k in range(4):
        assert (labels[k] == k).all()
    top, bottom, left, right = rggb_padding(cfa, (h, w))
    assert offset == (top, left) and (top + h + bottom) % 2 == 0 and (left + w + right) % 2 == 0


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_plane_values_maps_sites_to_rggb(cfa):
    per_site = np.array([[11.0, 22.0], [33.0, 44.0]])
    mosaic = np.tile(per_site, (3, 4))  # 6 x 8, constant per 2x2 site
    planes, _ = pack(mosaic, cfa)
    expected = [planes[k, 0, 0] for k in range(4)]
    np.testing.assert_array_equal(plane_values(per_site, cfa), expected)
    labels = _site_labels(cfa, 2, 2)  # plane index at each site
    for k in range(4):
        assert plane_values(per_site, cfa)[k] == per_site[labels == k][0]


@pytest.mark.parametrize(("cfa", "black", "white"), [
    ("RGGB", [200, 700, 450, 1100], 4095),
    ("BGGR", [512, 2048, 1024, 1536], 16383),
    ("GRBG", [1100, 200, 700, 450], 4095),
    ("GBRG", [2048, 512, 1536, 1024], 16383),
])
def test_per_site_black_levels(make_dng, cfa, black, white):
    grey = 0.5  # sRGB-encoded
    path, truth = make_dng("g.dng", np.full((37, 45, 3), grey), cfa=cfa, black=black, white=white)
    raw = decode(path)
    np.testing.assert_array_equal(raw.black, np.reshape(black, (2, 2)))
    packed = normalise(raw)
    expected = truth[0, 0][[0, 1, 1, 2]]  # white-balanced camera RGB per plane
    for k in range(4):
        assert np.abs(packed.planes[k] - expected[k]).max() < 1.0 / (white - max(black))
    out = develop(path).astype(np.float64)
    assert np.abs(out.mean(axis=(0, 1)) - grey * 255).max() < 0.25
    assert np.abs(out - grey * 255).max() <= 1.01  # flat: no checkerboard, no tint
    # larger and with read noise, as a camera gives it: still grey at every 2x2 site
    noisy, _ = make_dng("noisy.dng", np.full((96, 128, 3), grey), cfa=cfa, black=black, white=white,
                        noise=(0.0, 2e-3), seed=1)
    out = develop(noisy).astype(np.float64)
    site_means = np.array([out[y::2, x::2].mean(axis=(0, 1)) for y in (0, 1) for x in (0, 1)])
    assert np.abs(site_means - grey * 255).max() < 0.3


# --- clipped highlights ----------------------------------------------------------------------------


@pytest.mark.parametrize("cfa", ["RGGB", "GBRG"])
@pytest.mark.parametrize("tone", ["default", "linear"])
def test_clipped_green_stays_neutral(tmp_path, cfa, tone):
    """Green clips while R and B stay below white: after WB gains > 1 a naive pipeline gives magenta."""
    h, w = 40, 120
    neutral = np.array([0.55, 1.0, 0.75])
    exposure = np.linspace(0.6, 1.3, w)[None, :].repeat(h, axis=0)  # grey scene, 1.0 = green clips
    exposure[:, 90:] = 1.25  # and a flat clipped block
    scene = exposure[..., None] * np.ones(3)  # white-balanced camera RGB
    raw_norm = synth.mosaic(scene * neutral, cfa)
    path = tmp_path / "hi.dng"
    synth.write_dng(path, raw_norm, cfa=cfa, black=256, white=4095, neutral=neutral)
    raw = decode(path)
    labels = _site_labels(cfa, h, w)
    clipped = exposure >= 1.0
    assert (raw.mosaic[(labels % 3 != 0) & clipped] == 4095).all()  # green at white
    assert raw.mosaic[(labels % 3 == 0) & clipped].max() < 4095  # red and blue below it
    out = develop(path, tone).astype(np.int64)
    region = out[2:-2][:, (exposure[0] >= 1.0)][:, 2:-2]  # clipped columns, less demosaic margin
    rg, bg = np.abs(region[..., 0] - region[..., 1]), np.abs(region[..., 2] - region[..., 1])
    assert rg.max() <= 2 and bg.max() <= 2, f"{cfa} {tone}: max |R-G| {rg.max()}, |B-G| {bg.max()}"
    assert region.min() >= (250 if tone == "linear" else 240)  # white (the default shoulder ends at 250)
    # the unclipped part of the ramp is neutral too and darker
    below = out[2:-2, 2:int(np.argmax(exposure[0] >= 0.95)) - 2]
    assert np.abs(below - below[..., 1:2]).max() <= 2 and below.mean() < region.mean()


# --- orientation -----------------------------------------------------------------------------------


def _asymmetric(h: int, w: int) -> np.ndarray:
    """Four differently coloured quadrants with a gradient: every flip and turn looks different."""
    img = np.empty((h, w, 3))
    img[: h // 2, : w // 2] = (0.9, 0.2, 0.2)
    img[: h // 2, w // 2:] = (0.2, 0.8, 0.2)
    img[h // 2:, : w // 2] = (0.2, 0.3, 0.9)
    img[h // 2:, w // 2:] = (0.9, 0.9, 0.3)
    img *= 0.6 + 0.4 * np.linspace(0, 1, w)[None, :, None]
    return img


def _quadrant_means(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    m = 3  # keep away from the demosaicked colour boundaries
    quads = [img[m:h // 2 - m, m:w // 2 - m], img[m:h // 2 - m, w // 2 + m:-m],
             img[h // 2 + m:-m, m:w // 2 - m], img[h // 2 + m:-m, w // 2 + m:-m]]
    return np.array([q.reshape(-1, 3).astype(np.float64).mean(axis=0) for q in quads])


def _as_displayed(srgb8: np.ndarray, orientation: int) -> np.ndarray:
    """How a viewer shows stored pixels tagged with ``orientation`` (Pillow's exif_transpose)."""
    im = Image.fromarray(srgb8)
    im.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(im))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_output_is_upright(cli, make_dng, tmp_path, orientation):
    stored = _asymmetric(41, 66)
    path, _ = make_dng(f"o{orientation}.dng", stored, cfa="GRBG", orientation=orientation)
    result = cli("develop", "--engine", "classical", "--tone", "linear", "--format", "png", path,
                 "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = read_image(tmp_path / "out" / f"o{orientation}.png")
    expected = _as_displayed((stored * 255).round().astype(np.uint8), orientation)
    assert out.shape == expected.shape == ((66, 41, 3) if orientation >= 5 else (41, 66, 3))
    np.testing.assert_allclose(_quadrant_means(out), _quadrant_means(expected), atol=3.0)
    # and it matches no other orientation of the same picture
    for other in range(1, 9):
        candidate = _as_displayed((stored * 255).round().astype(np.uint8), other)
        if other != orientation and candidate.shape == out.shape:
            assert np.abs(_quadrant_means(out) - _quadrant_means(candidate)).max() > 20


def test_default_tone_keeps_white_and_rolls_off_pushed_highlights():
    from rawisp.stages.render import render, shoulder

    ramp = np.linspace(0, 1, 257, dtype=np.float32)
    rgb = np.repeat(ramp[None, :, None], 3, axis=2)
    for ev in (0.0, 1.0, 2.0):
        out = render(rgb, np.eye(3), exposure=ev, tone="default").astype(int)[0, :, 1]
        assert out[0] == 0 and out[-1] == 255  # black stays black, white stays white
        assert np.all(np.diff(out) >= -1)  # monotonic up to the one-LSB dither
    pushed = render(rgb, np.eye(3), exposure=2.0, tone="default").astype(int)[0, :, 1]
    clipped = render(rgb, np.eye(3), exposure=2.0, tone="linear").astype(int)[0, :, 1]
    # +2 EV: the linear tone clips everything above 1/4; the shoulder keeps far more of it apart
    assert (clipped == 255).sum() > 180 and (pushed == 255).sum() < 0.6 * (clipped == 255).sum()
    x = np.linspace(0, 4, 401)
    y = shoulder(x, 4.0)
    assert y[-1] == pytest.approx(1.0) and np.all(np.diff(y) > 0)
    assert np.array_equal(shoulder(x, 1.0), x)
