"""Other RAW developers (rawpy/LibRaw, darktable-cli, rawtherapee-cli), run on a file to check that
rawisp's linear DNGs develop like the originals they were made from.

Each editor is run with its defaults ("default") or with its look switched off ("neutral":
darktable without the scene-referred workflow's exposure and filmic, RawTherapee with its
built-in neutral profile instead of the auto-matched tone curve, LibRaw without auto-brightening),
which isolates what the file says (levels, colour calibration, white balance, orientation) from
the look each editor chooses per kind of file.

Why the defaults differ between a Bayer original and its linear DNG, whatever the DNG holds:
- darktable 4.2 switches filmic rgb on by default only for images it flags as raw
  (``dt_image_is_raw``: DT_IMAGE_RAW), and its rawspeed loader flags a non-CFA image (LinearRaw,
  any 3-sample DNG) DT_IMAGE_S_RAW instead (``dt_imageio_open_rawspeed_sraw``); the scene-referred
  exposure preset applies to both. darktable 4.4 applies filmic to these images too
  (darktable-org/darktable#14559, fixing #14558).
- RawTherapee 5.9's default raw profile corrects chromatic aberration on the raw data, and only
  for Bayer data (``rawimagesource.cc``: ``raw.ca_autocorrect && getSensorType() == ST_BAYER``);
  ``raw_ca=False`` switches that step off to compare the rest of the default look.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import tifffile

EDITORS = ("rawpy", "darktable", "rawtherapee")
_COMMANDS = {"darktable": "darktable-cli", "rawtherapee": "rawtherapee-cli"}
TIMEOUT_S = 300
# a processing profile with no settings: RawTherapee fills in its built-in neutral values
_NEUTRAL_PP3 = "[Version]\nAppVersion=5.9\nVersion=346\n"
# a partial profile laid over RawTherapee's default: no raw-stage (Bayer-only) CA correction
_NO_RAW_CA_PP3 = _NEUTRAL_PP3 + "\n[RAW]\nCA=false\n"


def missing(editor: str) -> str | None:
    """Why ``editor`` cannot run here (its command is not installed), or None."""
    command = _COMMANDS.get(editor)
    return None if command is None or shutil.which(command) else f"{command} is not installed"


def develop_with(editor: str, source: Path, workdir: Path, *, neutral: bool = False,
                 raw_ca: bool = True) -> np.ndarray:
    """``source`` developed by ``editor`` (one of EDITORS): upright sRGB (H, W, 3) float in [0, 1].

    raw_ca=False: RawTherapee's default profile without its raw-stage CA correction (see above;
    the other editors ignore it).

    ``workdir`` holds the output and the editor's settings. Raises RuntimeError with the
    editor's message when it fails.
    """
    if editor == "rawpy":
        import rawpy

        with rawpy.imread(str(source)) as raw:
            return raw.postprocess(use_camera_wb=True, no_auto_bright=neutral, output_bps=16) / 65535.0
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{source.stem}.{editor}{'.neutral' * neutral}{'.no_raw_ca' * (not raw_ca)}.tif"
    out.unlink(missing_ok=True)
    if editor == "darktable":
        argv = ["darktable-cli", str(source), str(out), "--core", "--configdir", str(workdir / "darktable"),
                "--library", ":memory:", "--conf", "plugins/imageio/format/tiff/bpp=16"]
        argv += ["--conf", "plugins/darkroom/workflow=none"] if neutral else []
    elif editor == "rawtherapee":
        profile = workdir / ("neutral.pp3" if neutral else "no_raw_ca.pp3")
        profile.write_text(_NEUTRAL_PP3 if neutral else _NO_RAW_CA_PP3)
        looks = ["-p", str(profile)] if neutral else ["-d", *(["-p", str(profile)] if not raw_ca else [])]
        argv = ["rawtherapee-cli", "-q", "-Y", *looks, "-o", str(out), "-t", "-b16", "-c", str(source)]
    else:
        raise ValueError(f"unknown editor {editor!r}; choose from {', '.join(EDITORS)}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"{argv[0]} failed on {source}: {(result.stderr or result.stdout).strip()[-500:]}")
    return tifffile.imread(out)[..., :3] / 65535.0


def flat_mask(srgb: np.ndarray, radius: int = 6) -> np.ndarray:
    """(H, W) bool: pixels whose (2 radius + 1)^2 neighbourhood varies by under half an 8-bit step
    in every channel (the flat patches and backgrounds of a synthetic chart, away from edges)."""
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.pad(np.asarray(srgb, np.float32), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    windows = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1), axis=(0, 1))
    spread = windows.max(axis=(-2, -1)) - windows.min(axis=(-2, -1))
    return spread.max(axis=-1) < 0.5 / 255


def centre_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centred ``shape`` (rows, columns) of ``image`` (an editor may trim a few border pixels
    of a Bayer frame that it keeps in a demosaicked one)."""
    top, left = (image.shape[0] - shape[0]) // 2, (image.shape[1] - shape[1]) // 2
    return image[top:top + shape[0], left:left + shape[1]]


def flat_delta_e(reference: np.ndarray, candidate: np.ndarray, mask: np.ndarray) -> float:
    """Mean CIEDE2000 of two sRGB pictures over ``mask`` (see :func:`flat_mask`), both centre-cropped
    to their common size."""
    from rawisp.measure.metrics import ciede2000, srgb_to_lab

    shape = tuple(min(a, b) for a, b in zip(reference.shape[:2], candidate.shape[:2]))
    ref, cand, mask = (centre_crop(x, shape) for x in (reference, candidate, mask))
    return float(ciede2000(srgb_to_lab(ref), srgb_to_lab(cand))[mask].mean())


def block_delta_e(reference: np.ndarray, candidate: np.ndarray, block: int = 16) -> float:
    """Mean CIEDE2000 of the ``block`` x ``block`` pixel means of two sRGB pictures (centre-cropped to
    their common size): colour and exposure, not the fine detail where demosaickers differ."""
    from rawisp.measure.metrics import ciede2000, srgb_to_lab

    h, w = (min(a, b) // block * block for a, b in zip(reference.shape[:2], candidate.shape[:2]))
    means = [centre_crop(x, (h, w)).reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))
             for x in (reference, candidate)]
    return float(ciede2000(srgb_to_lab(means[0]), srgb_to_lab(means[1])).mean())
