"""Whether a runtime or precision changes the learned engine's pictures: files developed with
onnxruntime in f32 (the reference) and with a candidate (OpenVINO f32, bf16, bf16 with parts of
the graph kept in f32), through rawisp's own path (normalise, tiles, render with its dither),
compared value by value.

The limits (issue #25): 8-bit outputs at least 99.9% of values within 1 code and none more than 4
codes off; 16-bit outputs and the linear DNG within the tile margin's tolerance, one 16-bit step
(``rawisp.engines.learned.output_step_in_linear``: a linear error below it moves a value by at most
one step, where it lies that close to a rounding boundary). ``tools/precision_check.py`` runs it.
Beside the codes it reports the largest CIEDE2000 between the two pictures (sRGB outputs), over
all pixels and over those with a value more than 4 codes off: whether a difference is one a
photographer could see (about 1 and above; a 1-code change of a dark grey already reaches 2).
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rawisp.engines.learned import Learned, default_model_path, load_card
from rawisp.engines.runtime import OpenVinoSession, import_openvino, open_session
from rawisp.io.decode import decode
from rawisp.measure.metrics import ciede2000, srgb_to_lab
from rawisp.pipeline.compose import BITS, RenderOptions, raw_to_pixels
from rawisp.stages.reconstruct import EngineOptions

WITHIN_ONE_8BIT = 0.999  # share of 8-bit values at most 1 code off
MAX_CODES = {8: 4, 16: 1}  # largest difference allowed anywhere, in codes of the output


@dataclass
class Difference:
    """How far a candidate's output is from the reference's, for one file and format."""

    file: str
    fmt: str
    values: int
    differing: int  # values not equal
    over_one: int  # values more than 1 code off
    over_four: int  # values more than 4 codes off
    max_codes: int
    delta_e: float | None = None  # largest CIEDE2000 of a pixel (sRGB outputs; None: a DNG)
    delta_e_over_four: float | None = None  # the same over pixels with a value > 4 codes off

    @property
    def within_one(self) -> float:
        return 1 - self.over_one / self.values if self.values else 1.0

    def passes(self) -> bool:
        bits = BITS[self.fmt]
        share_ok = self.within_one >= WITHIN_ONE_8BIT if bits == 8 else True
        return share_ok and self.max_codes <= MAX_CODES[bits]

    def line(self) -> str:
        colour = ""
        if self.delta_e is not None:
            colour = f", CIEDE2000 max {self.delta_e:.2f}"
            if self.over_four:
                colour += f" ({self.delta_e_over_four:.2f} where > 4 codes)"
        return (f"{Path(self.file).name}: {self.fmt} {100 * self.within_one:.4f}% within 1 code, "
                f"{self.over_one} values >1, {self.over_four} >4, max {self.max_codes} codes "
                f"({self.differing} of {self.values} differ){colour} {'ok' if self.passes() else 'FAILS'}")


def difference(file: str, fmt: str, reference: np.ndarray, candidate: np.ndarray) -> Difference:
    """Value-by-value difference of two outputs of the same file and format."""
    if reference.shape != candidate.shape:
        raise ValueError(f"{file}: outputs of different shapes {reference.shape} and {candidate.shape}")
    d = np.abs(reference.astype(np.int32) - candidate.astype(np.int32))
    colour = fmt != "dng" and reference.ndim == 3 and reference.shape[-1] == 3
    delta_e = largest_delta_e(reference, candidate, d) if colour else (None, None)
    return Difference(file, fmt, int(d.size), int(np.count_nonzero(d)), int(np.count_nonzero(d > 1)),
                      int(np.count_nonzero(d > 4)), int(d.max(initial=0)), *delta_e)


def largest_delta_e(reference: np.ndarray, candidate: np.ndarray, off: np.ndarray,
                    chunk: int = 1 << 20) -> tuple[float, float]:
    """Largest CIEDE2000 between two sRGB pictures ``(H, W, 3)`` (uint8 or uint16) over the pixels
    that differ, and over those with a value more than 4 codes off; ``off`` is the per-value
    difference in codes. Taken ``chunk`` pixels at a time (a 24 MP frame's CIELAB at once would take
    GBs)."""
    ref, got = reference.reshape(-1, 3), candidate.reshape(-1, 3)
    pixel_off = off.reshape(-1, 3).max(axis=1)
    changed = np.flatnonzero(pixel_off)
    worst = worst_over_four = 0.0
    for start in range(0, changed.size, chunk):
        part = changed[start:start + chunk]
        de = ciede2000(srgb_to_lab(ref[part]), srgb_to_lab(got[part]))
        worst = max(worst, float(de.max()))
        far = pixel_off[part] > 4
        if far.any():
            worst_over_four = max(worst_over_four, float(de[far].max()))
    return worst, worst_over_four


def keep_in_f32(model, pattern: str):
    """An OpenVINO model with the operations whose names match ``pattern`` (a regular expression
    on the ONNX node names: ``^/bottom/``) kept in f32 however the rest runs: marked ``precise``
    (DisableFP16Compression, which the CPU plugin also honours for bf16). Python cannot make that
    attribute, so the model goes through OpenVINO's IR, where it is written as XML."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory(prefix="rawisp-ov-") as tmp:
        xml, weights = Path(tmp) / "model.xml", Path(tmp) / "model.bin"
        ov.serialize(model, str(xml), str(weights))
        tree = ET.parse(xml)
        for layer in tree.getroot().iter("layer"):
            if layer.get("type") in ("Const", "Parameter", "Result") or not re.search(pattern, layer.get("name", "")):
                continue
            info = layer.find("rt_info")
            if info is None:
                info = ET.SubElement(layer, "rt_info")
            ET.SubElement(info, "attribute", {"name": "precise", "version": "0"})
        tree.write(xml)
        return ov.Core().read_model(str(xml), str(weights))


def candidate_engine(model: Path | None, precision: str, output_bits: int, threads: int,
                     keep_f32: str | None = None) -> Learned:
    """The learned engine on OpenVINO in ``precision`` (f32 or bf16), parts matching ``keep_f32``
    kept in f32."""
    path = Path(model) if model else default_model_path()
    card = load_card(path)
    options = EngineOptions(model=str(path), threads=threads, output_bits=output_bits)
    ov_model = None
    if keep_f32:
        ov_model = keep_in_f32(import_openvino().Core().read_model(str(path)), keep_f32)
    return Learned(OpenVinoSession(path, threads, precision, model=ov_model), card, options)


def reference_engine(model: Path | None, output_bits: int, threads: int) -> Learned:
    """The learned engine on onnxruntime's CPU in f32: the pictures every candidate is held to."""
    path = Path(model) if model else default_model_path()
    options = EngineOptions(model=str(path), threads=threads, output_bits=output_bits)
    return Learned(open_session(path, "cpu", threads, "onnxruntime", "f32"), load_card(path), options)


def check_files(files: Sequence[Path], fmts: Sequence[str], candidates: dict[str, dict], *,
                model: Path | None = None, threads: int = 0) -> Iterator[tuple[str, Difference]]:
    """(candidate name, Difference) for every Bayer file, format and candidate: ``candidates``
    maps names to keywords of :func:`candidate_engine` (precision, keep_f32). Non-Bayer files
    (demosaicked by LibRaw, no learned engine) are skipped."""
    for fmt in fmts:
        bits = BITS[fmt]
        reference = reference_engine(model, bits, threads)
        engines = {name: candidate_engine(model, output_bits=bits, threads=threads, **kw)
                   for name, kw in candidates.items()}
        look = RenderOptions(fmt=fmt, threads=threads)
        for file in files:
            raw = decode(Path(file))
            if raw.mosaic is None:
                continue
            (ref,) = [p.pixels[0] for p in raw_to_pixels(raw, [reference], [look], stream=True)]
            for name, engine in engines.items():
                (got,) = [p.pixels[0] for p in raw_to_pixels(raw, [engine], [look], stream=True)]
                yield name, difference(str(file), fmt, ref, got)
