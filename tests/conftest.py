"""Shared helpers for the pipeline and CLI acceptance tests: synthetic scenes, DNGs, CLI runs."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import exiv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageCms

from rawisp.cli import main
from rawisp.measure import synth
from rawisp.measure.chart import COLORCHECKER_SRGB8, pink_noise

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OTHER_CAM_FROM_SRGB = np.array([[0.62, 0.30, 0.08], [0.20, 0.70, 0.10], [0.02, 0.18, 0.80]])
EXIF = {
    "ExposureTime": Fraction(1, 250),
    "FNumber": 2.8,
    "ISO": 400,
    "FocalLength": 35.0,
    "DateTimeOriginal": "2024:05:06 07:08:09",
    "LensModel": "Test Lens 35mm F2.8",
    "Artist": "Ada Lovelace",
    "Copyright": "(c) 2024 rawisp",
    "GPS": {"lat": -33.856784, "lon": 151.215297, "alt": -12.5},
}
XMP_PACKET = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmp:Rating="4" xmp:Label="Green">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Harbour at dusk</rdf:li></rdf:Alt></dc:title>
<dc:subject><rdf:Bag><rdf:li>harbour</rdf:li><rdf:li>dusk, blue hour</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""
# every tag rawisp carries from a source to its outputs (issue 12), as synth.write_dng takes them
FULL_EXIF = {
    **EXIF,
    "ModifyDate": "2024:05:07 10:00:00",
    "ImageDescription": "A synthetic scene",
    "CreateDate": "2024:05:06 07:08:09",
    "SubSecTimeOriginal": "250",
    "SerialNumber": "SN-0042",
    "LensInfo": (24, 70, 2.8, 2.8),
    "ExposureCompensation": Fraction(-2, 3),
    "ExposureProgram": 3,
    "MeteringMode": 5,
    "Flash": 16,
    "WhiteBalance": 1,
    "FocalLengthIn35mmFormat": 52,
    "XMP": XMP_PACKET,
}


_GROUP_NAMES = {"Image": "Image", "Photo": "EXIF", "GPSInfo": "GPS"}


def read_exif(path: Path) -> dict[str, str]:
    """IFD0, Exif and GPS tags of a file read by exiv2, named as exifread names them ("Image Make",
    "EXIF ExposureTime", "GPS GPSLatitude"), values as exiv2's text ("1/250", "14/5", "400")."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    return {f"{_GROUP_NAMES[d.groupName()]} {d.tagName()}": d.toString() for d in image.exifData()
            if d.groupName() in _GROUP_NAMES}


def rational(text: str, index: int = 0) -> float:
    """Value `index` of exiv2 rational text ("33/1 51/1 244224/10000") as a float."""
    return float(Fraction(text.split()[index]))


def natural_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A natural-looking sRGB image (h, w, 3) float64 in [0, 1].

    Smooth 1/f^2 colour fields (sky, walls, skin), six overlapping discs with 1-pixel anti-aliased
    edges of random colour (objects), and a +-7.5 % 1/f texture multiplied over everything.
    """
    rng = np.random.default_rng(seed)
    img = 0.15 + 0.7 * np.stack([pink_noise(h, w, rng, 2.0) for _ in range(3)], axis=-1)
    y, x = np.mgrid[0:h, 0:w]
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = rng.uniform(0.05, 0.25) * min(h, w)
        colour = rng.uniform(0.05, 0.95, 3)
        alpha = np.clip(radius - np.hypot(y - cy, x - cx) + 0.5, 0, 1)[..., None]
        img = img * (1 - alpha) + colour * alpha
    texture = pink_noise(h, w, rng, 1.0) - 0.5
    return np.clip(img * (1 + 0.15 * texture[..., None]), 0, 1)


PATCH = 32  # side of one flat colour patch in pixels


def patch_image(extra: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The 24 ColorChecker colours as a 4x6 grid of flat PATCH-pixel patches, uint8 sRGB.

    ``extra`` rows/columns (copies of the last) make the size odd. Returns (image, colours (4, 6, 3)).
    """
    colours = COLORCHECKER_SRGB8.reshape(4, 6, 3)
    img = np.repeat(np.repeat(colours, PATCH, axis=0), PATCH, axis=1)
    return np.pad(img, ((0, extra), (0, extra), (0, 0)), mode="edge"), colours


def patch_means(img: np.ndarray, margin: int = 4) -> np.ndarray:
    """Mean colour (4, 6, 3) over the interior (less ``margin`` pixels) of each patch of patch_image."""
    out = np.empty((4, 6, 3))
    for r in range(4):
        for c in range(6):
            block = img[r * PATCH + margin:(r + 1) * PATCH - margin, c * PATCH + margin:(c + 1) * PATCH - margin]
            out[r, c] = block.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return out


# sRGB's primaries and white adapted to the ICC's D50 connection space (IEC 61966-2-1 profiles), XYZ
SRGB_D50_COLORANTS = {"red": (0.4361, 0.2225, 0.0139), "green": (0.3851, 0.7169, 0.0971),
                      "blue": (0.1431, 0.0606, 0.7139), "media_white_point": (0.9642, 1.0, 0.8249)}


def assert_srgb_profile(icc: bytes) -> None:
    """``icc`` is an RGB display profile with sRGB's colorants and white (to 4 decimals)."""
    assert icc[36:40] == b"acsp"  # the ICC signature
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    assert "sRGB" in profile.profile_description
    assert (profile.xcolor_space.strip(), profile.connection_space.strip()) == ("RGB", "XYZ")
    for name, xyz in SRGB_D50_COLORANTS.items():
        value = getattr(profile, name if name == "media_white_point" else f"{name}_colorant")[0]
        assert value == pytest.approx(xyz, abs=6e-4), name


def read_image(path: Path) -> np.ndarray:
    """An 8-bit output as an (H, W, 3) uint8 array."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def part_files(root: Path) -> list[Path]:
    """Temporary ``.part`` files anywhere under ``root``."""
    return sorted(p for p in Path(root).rglob("*") if p.name.endswith(".part"))


def lines_naming(text: str, path: Path | str) -> list[str]:
    """The lines of ``text`` that name ``path`` as the subject of a message (``rawisp: PATH: ...``)."""
    return [line for line in text.splitlines() if line.startswith(f"rawisp: {path}: ")]


SUMMARY = re.compile(r"^(\d+) developed, (\d+) skipped, (\d+) failed in [\d.]+ s$", re.M)


def summary(result: Result) -> tuple[int, int, int]:
    """(developed, skipped, failed) from the last summary line of a develop run."""
    found = SUMMARY.findall(result.stdout)
    assert found, f"no summary line in stdout: {result.stdout!r} (stderr: {result.stderr!r})"
    return tuple(int(v) for v in found[-1])


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``rawisp ARGS`` in-process (click's CliRunner; stdout and stderr kept apart)."""
    runner = CliRunner()

    def run(*args: object) -> Result:
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result

    return run


@pytest.fixture
def make_dng(tmp_path: Path) -> Callable[..., tuple[Path, np.ndarray]]:
    """``make_dng(name, srgb, **srgb_to_dng_kwargs)`` -> (path under tmp_path, ground truth)."""

    def make(name: str, srgb: np.ndarray, **kwargs) -> tuple[Path, np.ndarray]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, synth.srgb_to_dng(path, srgb, **kwargs)

    return make
