"""The photographer's measures where they are used: model_defects' texture and colour_edges sections,
the edges validation set (tools/make_val_sets.py, the training's validation) and texture in validation."""

import numpy as np
import pytest

import model_defects  # noqa: E402  (tools/, on the tests' pythonpath)
from rawisp.measure import texture
from rawisp.colour import srgb_decode, srgb_encode
from rawisp.train.procedural import colour_edges


def _hsv_saturation(img: np.ndarray) -> np.ndarray:
    hi, lo = img.max(axis=-1), img.min(axis=-1)
    return (hi - lo) / np.maximum(hi, 1e-6)


def _as_tiff16(linear_lum: np.ndarray) -> np.ndarray:
    """A grey 16-bit sRGB picture of a linear luminance, as `rawisp develop --format tiff16 --tone linear` writes."""
    return np.repeat(np.round(srgb_encode(linear_lum) * 65535).astype(np.uint16)[..., None], 3, axis=2)


def test_texture_report_reads_known_blur_and_noise():
    truth = texture.target("dark", 256)
    lum = srgb_decode(truth[..., 0])
    assert model_defects.texture_report(truth, _as_tiff16(lum)) == {"mtf": 1.0, "noise_percent": pytest.approx(0, abs=0.05)}
    # a 3x3 box blur: transfer sinc(fy) sinc(fx) per axis (a known defect: lost texture, no noise)
    padded = np.pad(lum, 1, mode="wrap")
    box = sum(padded[1 + dy:257 + dy, 1 + dx:257 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    blurred = model_defects.texture_report(truth, _as_tiff16(box))
    assert 0.3 < blurred["mtf"] < 0.6 and blurred["noise_percent"] < 2.0
    # added white noise of 10% of the mean: read as 9.35% above 0.2 cycles/px, texture kept
    noisy = lum + 0.1 * lum.mean() * np.random.default_rng(0).standard_normal(lum.shape)
    report = model_defects.texture_report(truth, _as_tiff16(noisy))
    assert report["noise_percent"] == pytest.approx(9.35, rel=0.1) and report["mtf"] == pytest.approx(1.0, abs=0.05)


def test_edges_images_are_the_val_sets_first_images_saturated_and_seeded():
    images = model_defects.edges_images(2)
    assert all(i.shape == (384, 384, 3) and i.dtype == np.uint8 for i in images)
    assert all(np.array_equal(a, b) for a, b in zip(images, model_defects.edges_images(2)))
    make_val_sets = pytest.importorskip("make_val_sets", reason="make_val_sets imports the training code (torch)")
    first = make_val_sets.edges_set(2)
    assert all(np.array_equal(a, np.round(np.clip(b, 0, 1) * 255).astype(np.uint8)) for a, b in zip(images, first))


def test_colour_edges_are_saturated_sharp_and_decorrelated():
    rng = np.random.default_rng(0)
    images = [colour_edges(rng, 128) for _ in range(4)]
    assert all(i.shape == (128, 128, 3) and i.dtype == np.float32 for i in images)
    again = np.random.default_rng(0)
    assert all(np.array_equal(a, colour_edges(again, 128)) for a in images)  # seeded
    sat = np.concatenate([_hsv_saturation(i).ravel() for i in images])
    assert np.median(sat) > 0.7 and np.mean(sat > 0.55) > 0.8  # leaves of saturation 0.6-1 (edges mix)
    # R, G and B do not move together: weakly correlated channels, and sharp steps everywhere
    corr = np.mean([np.abs(np.corrcoef(i.reshape(-1, 3).T)[np.triu_indices(3, 1)]).mean() for i in images])
    assert corr < 0.5
    steps = np.mean([np.mean(np.abs(np.diff(i, axis=1)).max(axis=-1) > 0.2) for i in images])
    assert steps > 0.05
    # flat colours: most pixels equal a neighbour exactly (no gratings or noise on the shapes)
    assert np.mean([np.mean(np.all(i[:, 1:] == i[:, :-1], axis=-1)) for i in images]) > 0.5


@pytest.mark.slow
def test_texture_and_colour_edges_sections_through_rawisp_develop(monkeypatch):
    """The new sections end to end, small: the classical engine (no denoising) on 128-px targets."""
    monkeypatch.setattr(model_defects, "TEXTURE_SIZE", 128)
    monkeypatch.setattr(model_defects, "EDGES", 1)
    monkeypatch.setattr(texture, "TARGETS", {"dark": texture.TARGETS["dark"]})  # the normal one: the same code
    report = model_defects.measure(None, "classical", ("texture", "colour_edges"))
    assert set(report) == {"texture", "colour_edges"}
    assert set(report["texture"]) == {"dark"}
    dark = report["texture"]["dark"]
    assert set(dark) == {"clean", "mid", "high"}
    assert all(0.6 < dark[p]["mtf"] < 0.95 for p in dark)  # a bilinear demosaic: soft, the same at every noise
    assert dark["clean"]["noise_percent"] < dark["mid"]["noise_percent"] < dark["high"]["noise_percent"]
    assert set(report["colour_edges"]) == {"clean_psnr_db", "mid_psnr_db"}
    assert 15 < report["colour_edges"]["mid_psnr_db"] < report["colour_edges"]["clean_psnr_db"] < 40


class TestValidation:
    torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")

    @pytest.fixture(scope="class")
    def sets(self):
        from rawisp.train.loop import validation_set

        rng = np.random.default_rng(0)
        photos = [(rng.random((80, 90, 3)) * 255).astype(np.uint8) for _ in range(3)]
        return validation_set(photos, size=64), validation_set(photos, size=64)

    def test_edges_and_texture_sets_are_seeded_and_clean(self, sets):
        from rawisp.train.loop import VAL_SETS, VAL_TEXTURE_SIZE

        a, b = sets
        assert "edges" in VAL_SETS and set(a) == {*VAL_SETS, "texture_mid", "texture_high"}
        batch, srgb = a["edges"]
        assert srgb.shape == (3, 3, 64, 64) and self.torch.equal(srgb, b["edges"][1])
        assert self.torch.equal(batch.x, b["edges"][0].x)
        assert self.torch.equal(batch.x[:, 4:], self.torch.zeros_like(batch.x[:, 4:]))  # no noise stated
        assert np.median(_hsv_saturation(srgb.permute(0, 2, 3, 1).numpy())) > 0.7
        high, target = a["texture_high"]
        assert target.shape == (1, 3, VAL_TEXTURE_SIZE, VAL_TEXTURE_SIZE)
        assert self.torch.equal(target, a["texture_mid"][1])  # the same target at both presets
        assert float(high.x[:, 4:].mean()) > float(a["texture_mid"][0].x[:, 4:].mean()) > 0  # high > mid noise

    def test_validate_records_texture_but_scores_psnr_only(self, sets):
        from rawisp.train.loop import validate, validation_score
        from rawisp.train.model import LWISP

        self.torch.manual_seed(0)
        scores = validate(LWISP((8, 16, 32)), sets[0])  # untrained: a bilinear demosaic
        assert 0.3 < scores["texture_mid"] < 1.2 and 0.3 < scores["texture_high"] < 1.2
        # an untrained network leaves the noise: more of it at high than at mid, both above a clean output's
        assert 1 < scores["texture_noise_mid"] < scores["texture_noise_high"] < 100
        assert 10 < scores["edges"] < 40
        psnrs = [v for k, v in scores.items() if not k.startswith("texture_")]
        assert validation_score(scores) == pytest.approx(np.mean(psnrs)) and len(psnrs) == 6
