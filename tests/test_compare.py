"""Side by side: ``rawisp compare``, its layout and crops, and ``rawisp develop --engine both``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import EXIF, lines_naming, natural_image, read_exif, read_image, summary
from PIL import Image

from rawisp.batch.runner import Job, Status
from rawisp.batch.tasks import DevelopBothTask
from rawisp.compare import picture as compare
from rawisp.compare.crops import Rect, plan_crops
from rawisp.compare.layout import (GAP, MARGIN, MIN_COLUMN, TILE_GAP, caption_height, label_height, plan_layout,
                                   title_height)
from rawisp.compare.picture import CompareOptions, compare_file
from rawisp.engines.registry import make_engine
from rawisp.io.decode import decode
from rawisp.measure.evaluate import evaluate
from rawisp.measure.protocol import Noise
from rawisp.pipeline import files
from rawisp.pipeline.compose import RenderOptions, render_picture
from rawisp.pipeline.files import develop_file
from rawisp.stages.normalise import normalise
from rawisp.stages.reconstruct import EngineOptions, reconstruct

PNG = RenderOptions(fmt="png")


@pytest.fixture(scope="module")
def engines():
    return [make_engine("classical"), make_engine("learned", EngineOptions(threads=1))]


def developed(path: Path, engine, render: RenderOptions = PNG) -> np.ndarray:
    """The upright 8-bit development of ``path`` by ``engine``, as compare makes it."""
    raw = decode(path)
    return render_picture(raw, reconstruct(normalise(raw), engine), render)


def region(img: np.ndarray, r: Rect) -> np.ndarray:
    return img[r.y:r.y + r.h, r.x:r.x + r.w]


# --- crop planning ----------------------------------------------------------------------------------


def test_plan_crops_finds_the_detailed_regions():
    rng = np.random.default_rng(0)
    img = np.full((600, 900, 3), 128, np.uint8)
    img[50:150, 600:700] = rng.integers(0, 256, (100, 100, 1), dtype=np.uint8)  # strong texture
    img[400:500, 100:200] = 128 + rng.integers(-40, 40, (100, 100, 1)).astype(np.uint8)  # weaker texture
    crops = plan_crops(img, count=3, size=120)
    assert len(crops) == 3
    first, second = crops[0], crops[1]
    assert first.x <= 600 and first.x + first.w >= 700 and first.y <= 50 and first.y + first.h >= 150
    assert second.x <= 100 and second.x + second.w >= 200 and second.y <= 400 and second.y + second.h >= 500
    for i, a in enumerate(crops):
        assert (a.w, a.h) == (120, 120) and 0 <= a.x <= 900 - 120 and 0 <= a.y <= 600 - 120
        for b in crops[i + 1:]:
            assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y, (a, b)


def test_plan_crops_small_pictures_fit_two():
    img = natural_image(60, 90, seed=1)
    crops = plan_crops((img * 255).astype(np.uint8), count=4, size=384)
    assert len(crops) >= 2
    assert all(c.w == 30 and c.h == 30 for c in crops)


# --- the picture --------------------------------------------------------------------------------------


def test_layout_size_labels_and_crop_tiles(make_dng, tmp_path, engines):
    source, _ = make_dng("s.dng", natural_image(150, 260, seed=3), noise=(1e-3, 5e-4))
    options = CompareOptions(view_width=200, crop_count=3, crop_size=48, zoom=2, diff=True)
    result = compare_file(source, tmp_path / "s.compare.png", engines, PNG, options)
    picture = read_image(result.output)

    # documented layout: 3 columns (classical, learned, diff), each max(view, MIN_COLUMN) wide; below
    # them one group per crop (the 3 tiles side by side), packed in rows as wide as the columns
    col = max(200, MIN_COLUMN)
    inner = 3 * col + 2 * GAP
    assert picture.shape[1] == 2 * MARGIN + inner == result.layout.width
    view_h = round(150 * 200 / 260)
    tile = 2 * max(c.w for c in result.crops)
    group = 3 * tile + 2 * TILE_GAP
    per_row = (inner + GAP) // (group + GAP)
    rows = -(-len(result.crops) // per_row)
    crop_block = rows * (GAP + caption_height() + tile)
    label_lines = 4  # the diff column's label has 4 lines, the engines' 3
    expected_h = 2 * MARGIN + title_height(2) + GAP + label_height(label_lines) + view_h + crop_block
    assert picture.shape[0] == expected_h == result.layout.height
    assert [c.view.w for c in result.layout.columns] == [200] * 3
    # the tiles of one crop sit side by side, in column order
    for k in range(len(result.crops)):
        xs = [c.tiles[k].x for c in result.layout.columns]
        assert xs == [xs[0], xs[0] + tile + TILE_GAP, xs[0] + 2 * (tile + TILE_GAP)]

    # crops: three 48 px windows inside the picture, apart, most detailed first (by the |Laplacian| of
    # the classical side's luminance, worked out here at full resolution); every tile is the 2x
    # enlarged 100% crop of its side
    assert len(result.crops) == 3
    for i, a in enumerate(result.crops):
        assert (a.w, a.h) == (48, 48) and a.x + a.w <= 260 and a.y + a.h <= 150
        for b in result.crops[i + 1:]:
            assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y, (a, b)
    lum = result.sides[0].pixels.astype(float).mean(axis=2)
    laplacian = np.pad(np.abs(4 * lum[1:-1, 1:-1] - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]), 1)
    energy = [laplacian[c.y:c.y + 48, c.x:c.x + 48].sum() for c in result.crops]
    windows = [laplacian[y:y + 48, x:x + 48].sum() for y in range(0, 103, 2) for x in range(0, 213, 2)]
    assert energy == sorted(energy, reverse=True) and energy[0] >= np.percentile(windows, 90)
    for side, column in zip(result.sides, result.layout.columns):
        for crop, tile in zip(result.crops, column.tiles):
            expected = np.repeat(np.repeat(region(side.pixels, crop), 2, axis=0), 2, axis=1)
            np.testing.assert_array_equal(region(picture, tile), expected)
    # the developments themselves are those of the plain pipeline
    np.testing.assert_array_equal(result.sides[0].pixels, developed(source, engines[0]))
    assert np.abs(result.sides[1].pixels.astype(int) - developed(source, engines[1])).max() <= 1

    # labels: drawn (bands not uniform), and different per side
    bands = [region(picture, c.label) for c in result.layout.columns]
    assert all(b.std() > 5 for b in bands)
    assert not np.array_equal(bands[0], bands[1])
    assert result.sides[0].label()[:2] == ["classical", "bilinear"]
    assert result.sides[1].label()[0] == "learned" and result.sides[1].label()[1] == engines[1].version
    assert all(re.fullmatch(r"reconstruct \d+\.\d\d s.*", s.label()[2]) for s in result.sides)
    assert region(picture, result.layout.title).std() > 5

    # the difference column's tiles show |learned - classical| x 8
    diff = np.abs(result.sides[1].pixels.astype(int) - result.sides[0].pixels.astype(int))
    for crop, tile in zip(result.crops, result.layout.columns[2].tiles):
        expected = np.clip(region(diff, crop) * 8, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(region(picture, tile)[::2, ::2], expected)


class Twin:
    """A stand-in "learned" engine that reconstructs exactly as the classical one."""

    name, version = "learned", "twin of classical"

    def __call__(self, packed):
        return make_engine("classical")(packed)


def test_flat_field_both_sides_render_the_same(make_dng, tmp_path, engines):
    grey = np.full((64, 96, 3), 0.6)
    source, _ = make_dng("flat.dng", grey)
    # the same reconstruction on both sides gives bit-identical views: the rendering is shared
    twin = compare_file(source, tmp_path / "twin.png", [engines[0], Twin()], PNG, CompareOptions(crop_count=2))
    picture = read_image(twin.output).astype(int)
    a, b = (region(picture, c.view) for c in twin.layout.columns[:2])
    np.testing.assert_array_equal(a, b)
    # with the real model: within a level or two (the model's own small deviations)
    result = compare_file(source, tmp_path / "flat.png", engines, PNG, CompareOptions(crop_count=2))
    picture = read_image(result.output).astype(int)
    a, b = (region(picture, c.view) for c in result.layout.columns[:2])
    assert a.shape == b.shape == (64, 96, 3)
    assert np.percentile(np.abs(a - b), 99) <= 2
    assert np.all(np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) < 1.0)


def test_plan_layout_packs_crop_groups():
    crops = [Rect(0, 0, 300, 100), Rect(0, 200, 300, 50), Rect(400, 0, 1000, 40)]
    layout = plan_layout((600, 1000), crops, 2, title_lines=2, label_lines=3, view_width=400)
    left, right = layout.columns
    assert layout.column_width == max(400, MIN_COLUMN)
    # groups: 604 px (two 300 px tiles), 604 px, then 2004 px, which widens the picture
    assert layout.width == 2 * MARGIN + 2 * 1000 + TILE_GAP
    assert left.tiles[0].x == MARGIN and right.tiles[0].x == MARGIN + 300 + TILE_GAP
    assert left.tiles[1].x == MARGIN + 604 + GAP and left.tiles[1].y == left.tiles[0].y  # same row
    assert left.tiles[2].x == MARGIN and left.tiles[2].y == left.tiles[0].y + 100 + GAP + caption_height()
    assert right.tiles[2].x == MARGIN + 1000 + TILE_GAP
    assert layout.height == left.tiles[2].y + 40 + MARGIN
    assert all(c.y == t.y - caption_height() for c, t in zip(left.captions, left.tiles))
    assert left.view.w == 400 and left.view.h == 240 and layout.view_scale == 0.4
    assert right.view.x == MARGIN + 400 + GAP


# --- the command --------------------------------------------------------------------------------------


CROPS_LINE = re.compile(r"crops ((?:\d+,\d+,\d+,\d+ ?)+)")


def test_cli_crop_is_honoured_and_bad_files_fail_alone(cli, make_dng, tmp_path, engines):
    # stored 160 wide x 120 high, shown upright (orientation 6) as 120 x 160: crops are upright pixels
    source, _ = make_dng("c.dng", natural_image(120, 160, seed=4), orientation=6)
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"not a raw file at all" * 10)
    out = tmp_path / "out"
    result = cli("compare", bad, source, "-o", out, "--format", "png", "--crop", "10,20,50,40",
                 "--crop", "100,140,40,40", "--view-width", "100")
    assert result.exit_code == 1
    assert re.search(r"^1 compared, 0 skipped, 1 failed in", result.stdout, re.M)
    assert len(lines_naming(result.stderr, bad)) == 1
    assert "crop 100,140,40,40 clipped to 100,140,20,20" in result.stderr
    assert f"{out / 'c.compare.png'}: crops 10,20,50,40 100,140,20,20" in result.stdout
    picture = read_image(out / "c.compare.png")
    classical = developed(source, engines[0])
    learned = developed(source, engines[1])
    assert classical.shape == (160, 120, 3)
    layout = plan_layout(classical.shape, [Rect(10, 20, 50, 40), Rect(100, 140, 20, 20)], 2, title_lines=2,
                         label_lines=3, view_width=100)
    assert picture.shape[:2] == (layout.height, layout.width)
    cols = layout.columns
    np.testing.assert_array_equal(region(picture, cols[0].tiles[0]), classical[20:60, 10:60])
    np.testing.assert_array_equal(region(picture, cols[0].tiles[1]), classical[140:160, 100:120])
    assert np.abs(region(picture, cols[1].tiles[0]).astype(int) - learned[20:60, 10:60]).max() <= 1
    assert np.abs(region(picture, cols[1].tiles[1]).astype(int) - learned[140:160, 100:120]).max() <= 1


def test_cli_crop_outside_the_picture_fails_that_file(cli, make_dng, tmp_path):
    source, _ = make_dng("o.dng", natural_image(40, 60, seed=4))
    result = cli("compare", source, "-o", tmp_path / "out", "--crop", "100,0,10,10")
    assert result.exit_code == 1
    assert lines_naming(result.stderr, source) == [f"rawisp: {source}: crop 100,0,10,10 lies outside the 60x40 picture"]


def test_cli_bad_crop_value(cli, make_dng, tmp_path):
    source, _ = make_dng("o.dng", natural_image(40, 60, seed=4))
    result = cli("compare", source, "-o", tmp_path / "out", "--crop", "1,2,3")
    assert result.exit_code == 2 and "X,Y,W,H" in result.stderr


def test_cli_exif_survives(cli, make_dng, tmp_path):
    source, _ = make_dng("e.dng", natural_image(40, 64, seed=7), exif=EXIF, make="Acme", model="Model 1")
    result = cli("compare", source, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    output = tmp_path / "out" / "e.compare.jpg"
    tags = read_exif(output)
    assert str(tags["Image Make"]) == "Acme" and str(tags["Image Model"]) == "Model 1"
    assert str(tags["EXIF DateTimeOriginal"]) == EXIF["DateTimeOriginal"]
    with Image.open(output) as im:
        assert im.format == "JPEG" and im.info.get("icc_profile")


def test_cli_ground_truth_prints_psnr_ssim_of_both(cli, tmp_path):
    truth = (natural_image(64, 80, seed=9) * 255).round().astype(np.uint8)
    gt = tmp_path / "gt.png"
    Image.fromarray(truth).save(gt)
    result = cli("compare", "--ground-truth", gt, "--noise", "mid", "-o", tmp_path / "out", "--format", "png")
    assert result.exit_code == 0, result.stderr
    found = re.findall(r"(classical|learned) PSNR ([\d.]+) dB SSIM ([\d.]+)", result.stdout)
    assert [name for name, _, _ in found] == ["classical", "learned"]
    for _, p, s in found:
        assert 15 < float(p) < 60 and 0 < float(s) <= 1
    # the same protocol as rawisp eval (image index 0): the classical row matches
    row = evaluate([gt], ["classical"], [Noise("mid", 1e-3, 5e-4)])[0]
    assert float(found[0][1]) == pytest.approx(row["psnr"], abs=0.006)
    assert float(found[0][2]) == pytest.approx(row["ssim"], abs=6e-5)
    picture = read_image(tmp_path / "out" / "gt.compare.png")
    assert picture.shape[1] == 2 * MARGIN + 3 * MIN_COLUMN + 2 * GAP  # classical, learned, ground truth
    result = cli("compare", "--ground-truth", gt, "--camera", "no-such-camera", "-o", tmp_path / "out2")
    assert result.exit_code == 2 and "--camera" in result.stderr


# --- develop --engine both ----------------------------------------------------------------------------


def test_engine_both_decodes_once_and_writes_both(make_dng, tmp_path, monkeypatch):
    source, _ = make_dng("b.dng", natural_image(48, 64, seed=2), noise=(1e-3, 5e-4))
    calls = []
    real = files.decode

    def counting(path, *args):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(files, "decode", counting)
    monkeypatch.setattr(compare, "decode", counting)
    outs = [tmp_path / "b.learned.png", tmp_path / "b.classical.png", tmp_path / "b.compare.jpg"]
    task = DevelopBothTask(EngineOptions(threads=1), PNG, side_by_side=True)
    outcome = task(Job(source, outs[0], tuple(outs[1:])))
    assert outcome.status == Status.DONE
    assert len(calls) == 1
    assert all(p.is_file() for p in outs)
    assert {"decode", "reconstruct learned", "reconstruct classical"} <= set(outcome.seconds)
    # the classical file is what the single-engine develop writes
    single = develop_file(source, tmp_path / "single.png", make_engine("classical"), PNG)
    np.testing.assert_array_equal(read_image(outs[1]), read_image(single.output))
    assert not np.array_equal(read_image(outs[0]), read_image(outs[1]))
    with Image.open(outs[2]) as im:
        assert im.format == "JPEG" and im.width == 2 * MARGIN + 2 * MIN_COLUMN + GAP


def test_cli_engine_both(cli, make_dng, tmp_path):
    source, _ = make_dng("b.dng", natural_image(40, 56, seed=2))
    out = tmp_path / "out"
    result = cli("develop", "--engine", "both", "--format", "png16", source, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (1, 0, 0)
    assert sorted(p.name for p in out.iterdir()) == ["b.classical.png", "b.learned.png"]
    result = cli("develop", "--engine", "both", "--side-by-side", source, "-o", out, "--format", "png16")
    assert summary(result) == (1, 0, 0)  # only the comparison was missing
    assert sorted(p.name for p in out.iterdir()) == ["b.classical.png", "b.compare.jpg", "b.learned.png"]
    result = cli("develop", "--engine", "both", "--side-by-side", source, "-o", out, "--format", "png16")
    assert summary(result) == (0, 1, 0)
    result = cli("develop", "--side-by-side", source, "-o", out)
    assert result.exit_code == 2 and "--engine both" in result.stderr
