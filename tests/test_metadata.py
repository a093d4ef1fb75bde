"""Metadata of every vendor format, read and written with exiv2, judged by exiftool; white balance."""

from __future__ import annotations

import json
from fractions import Fraction
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rawpy
from conftest import DATA, FULL_EXIF, natural_image, read_image

from rawisp import __version__
from rawisp.engines.registry import make_engine
from rawisp.io.decode import decode
from rawisp.io.whitebalance import parse_wb
from rawisp.pipeline.compose import RenderOptions
from rawisp.pipeline.files import develop_file

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real RAW files not available ({DATA})")
D30 = DATA / "real" / "canon_eos_d30.imagemeta.CRW"
FORMATS = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff16": ".tif"}

# the tags issue 12 lists, by exiftool's names
EXIF_TAGS = ["Make", "Model", "LensModel", "DateTimeOriginal", "CreateDate", "ModifyDate", "SubSecTimeOriginal",
             "SerialNumber", "LensInfo", "ExposureTime", "FNumber", "ISO", "FocalLength", "ExposureCompensation",
             "ExposureProgram", "MeteringMode", "Flash", "WhiteBalance", "FocalLengthIn35mmFormat",
             "ImageDescription", "Artist", "Copyright", "GPSLatitude", "GPSLatitudeRef", "GPSLongitude",
             "GPSLongitudeRef", "GPSAltitude", "GPSAltitudeRef"]
XMP_TAGS = ["Rating", "Label", "Title", "Description", "Subject"]
# How a source's tag that exists only in its maker notes is judged in the output: by the EXIF tag
# exiftool reads from the output, compared with the maker-note value put in EXIF's terms.
# - by default the same number (exiftool -n; e.g. Canon's ExposureCompensation -0.667 EV);
# - PRINTED_TAGS: the same text as exiftool prints it (a Canon serial number "1235-02474");
# - EXIF_WORDS: tags whose vendor words differ from EXIF's: the EXIF word for the vendor's word
#   (Canon's metering "Evaluative" is EXIF's "Multi-segment"; EXIF's white balance is only Auto or
#   Manual, so every other vendor mode is Manual).
PRINTED_TAGS = {"SerialNumber"}
EXIF_WORDS = {
    "MeteringMode": lambda word: {"Evaluative": "Multi-segment"}.get(word, word),
    "WhiteBalance": lambda word: "Auto" if word.startswith("Auto") else "Manual",
}
STANDARD_GROUPS = ("EXIF", "XMP", "Composite")


def exiftool(path: Path, numeric: bool = False) -> dict:
    """exiftool -j -G of `path` (-n: numbers, not printed words); only File: tags for a file type
    exiftool does not know."""
    out = subprocess.run(["exiftool", "-j", "-G", *(["-n"] if numeric else []), str(path)],
                         capture_output=True, text=True)
    return json.loads(out.stdout)[0]


def by_name(tags: dict, groups: tuple[str, ...] | None = None) -> dict:
    """tag name -> value, from the first of `groups` that has the tag (None: every group but File
    and ExifTool, in the file's order)."""
    found: dict = {}
    if groups is None:
        groups = tuple(g for g in dict.fromkeys(k.partition(":")[0] for k in tags) if g not in ("File", "ExifTool"))
    for group in groups:
        for key, value in tags.items():
            family, _, name = key.partition(":")
            if family == group:
                found.setdefault(name, value)
    return found


def same(a, b) -> bool:
    """Equal, or numbers within 2% (a source's APEX-coded exposure is written as a plain fraction:
    exiftool reads the D30's 5.04 s as 5 s from the output)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 0.02 * max(abs(a), abs(b))
    return a == b


def develop(source: Path, out: Path, fmt: str, **options) -> Path:
    output = out / (source.stem + FORMATS[fmt])
    develop_file(source, output, make_engine("classical"), RenderOptions(fmt=fmt, overwrite=True, **options))
    return output


# --- synthetic DNGs carrying every listed tag -------------------------------------------------------


@pytest.fixture(scope="module")
def full_source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "full.dng"
    from rawisp.measure import synth

    synth.srgb_to_dng(path, natural_image(30, 44, seed=3), exif=FULL_EXIF, make="Acme", model="Model 1",
                      orientation=6)
    return path


@needs_exiftool
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_listed_tag_reaches_the_output(full_source, tmp_path, fmt):
    output = develop(full_source, tmp_path, fmt)
    for numeric in (False, True):
        src, out = exiftool(full_source, numeric), exiftool(output, numeric)
        for group, names in (("EXIF", EXIF_TAGS), ("XMP", ["Rating", "Label", "Title", "Subject"])):
            expected = {n: src[f"{group}:{n}"] for n in names if f"{group}:{n}" in src}
            assert len(expected) == len(names), sorted(set(names) - set(expected))
            assert {n: out.get(f"{group}:{n}") for n in expected} == expected, (fmt, numeric)
    out = exiftool(output, numeric=True)
    assert out["EXIF:Orientation"] == 1 and out["EXIF:Software"] == f"rawisp {__version__}"
    assert (out["EXIF:ExifImageWidth"], out["EXIF:ExifImageHeight"]) == (30, 44)  # turned upright
    assert out["EXIF:ColorSpace"] == 1 and out["ICC_Profile:ProfileDescription"]
    assert not any(key.startswith("MakerNotes:") for key in out)


def test_two_develops_give_identical_bytes(full_source, tmp_path):
    for fmt in FORMATS:
        one = develop(full_source, tmp_path / "one", fmt)
        two = develop(full_source, tmp_path / "two", fmt)
        assert one.read_bytes() == two.read_bytes(), fmt


@needs_exiftool
@pytest.mark.parametrize("sidecar", ["{name}.xmp", "{stem}.xmp"])
def test_sidecar_xmp_reaches_the_output(tmp_path, sidecar):
    from rawisp.measure import synth

    source = tmp_path / "s.dng"
    synth.srgb_to_dng(source, natural_image(30, 44, seed=1), exif={k: v for k, v in FULL_EXIF.items() if k != "XMP"})
    (tmp_path / sidecar.format(name=source.name, stem=source.stem)).write_text(SIDECAR)
    output = develop(source, tmp_path / "out", "jpeg")
    out = exiftool(output, numeric=True)
    assert out["XMP:Rating"] == 5 and out["XMP:Label"] == "Red"
    assert out["XMP:Title"] == "Pier" and out["XMP:Description"] == "Evening light on the pier"
    assert out["XMP:Subject"] == ["pier", "sea"]
    # the sidecar's position replaces the file's (which said -33.86, 151.22)
    assert out["EXIF:GPSLatitude"] == pytest.approx(48.8584, abs=1e-4) and out["EXIF:GPSLatitudeRef"] == "N"
    assert out["EXIF:GPSLongitude"] == pytest.approx(2.2945, abs=1e-4) and out["EXIF:GPSLongitudeRef"] == "E"
    assert out["EXIF:Make"] == "rawisp" and out["EXIF:ISO"] == 400  # the file's EXIF stays


SIDECAR = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:exif="http://ns.adobe.com/exif/1.0/" xmp:Rating="5" xmp:Label="Red"
 exif:GPSLatitude="48,51.504N" exif:GPSLongitude="2,17.67E">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Pier</rdf:li></rdf:Alt></dc:title>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Evening light on the pier</rdf:li></rdf:Alt></dc:description>
<dc:subject><rdf:Bag><rdf:li>pier</rdf:li><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


# --- real camera files ------------------------------------------------------------------------------


def real_sources() -> list[Path]:
    if not DATA.is_dir():
        return []
    return sorted(p for folder in ("real", "derived") for p in (DATA / folder).iterdir() if p.suffix.lower() != ".jpg")


def expected_in_output(source: Path) -> dict[str, tuple[bool, object]]:
    """Every listed tag the source has in any group: name -> (printed?, value the output's EXIF
    tag must have), by the rules above PRINTED_TAGS. Blank values and the zeros EXIF defines as
    "unknown" are left out: they say nothing."""
    numeric, printed = exiftool(source, numeric=True), exiftool(source)
    standard = by_name(numeric, STANDARD_GROUPS)
    anywhere, anywhere_printed = by_name(numeric), by_name(printed)
    expected: dict[str, tuple[bool, object]] = {}
    for name in EXIF_TAGS:
        if name in standard:
            expected[name] = (False, standard[name])
        elif name in PRINTED_TAGS and name in anywhere_printed:
            expected[name] = (True, anywhere_printed[name])
        elif name in EXIF_WORDS and name in anywhere_printed:
            expected[name] = (True, EXIF_WORDS[name](anywhere_printed[name]))
        elif name in anywhere:
            expected[name] = (False, anywhere[name])
    unknown_when_zero = {"ExposureTime", "FNumber", "FocalLength", "ISO", "FocalLengthIn35mmFormat", "MeteringMode"}
    return {n: (p, v) for n, (p, v) in expected.items() if v != "" and not (v == 0 and n in unknown_when_zero)}


@needs_data
@needs_exiftool
@pytest.mark.slow  # three develops of every real file (12 MP GoPro frames among them)
@pytest.mark.parametrize("source", real_sources(), ids=lambda p: p.name)
def test_real_files_keep_their_metadata(source, tmp_path):
    """Every listed tag the source has anywhere (EXIF, XMP, exiftool's composite and maker-note
    values) reaches the developed JPEG, PNG and TIFF: a standard tag with the same value (numbers
    within 2%), a maker-note-only one as the EXIF tag exiftool derives (see PRINTED_TAGS)."""
    expected = expected_in_output(source)
    for fmt in ("jpeg", "png", "tiff16"):
        output = develop(source, tmp_path, fmt)
        numeric, printed = by_name(exiftool(output, numeric=True), ("EXIF",)), by_name(exiftool(output), ("EXIF",))
        got = {n: (printed if is_printed else numeric).get(n) for n, (is_printed, _) in expected.items()}
        wrong = {n: (v, got[n]) for n, (_, v) in expected.items() if not same(v, got[n])}
        print(source.name, fmt, sorted(expected))
        assert not wrong, (source.name, fmt, wrong)


@needs_data
def test_d30_crw_white_balance_and_exif(tmp_path):
    """The D30 records no as-shot multipliers (Auto): by default the balance of the camera's JPEG
    in the file (tests/test_card.py); --wb auto is LibRaw's auto white balance, no orange cast."""
    assert decode(D30).wb_source == "camera JPEG"
    raw = decode(D30, wb="auto")
    assert raw.wb_source == "LibRaw auto"
    assert raw.cfa == "RGGB" and raw.mosaic.shape == (1448, 2176)  # rawisp's engines develop it
    with rawpy.imread(str(D30)) as r:
        reference = r.postprocess(use_camera_wb=True, half_size=True)  # what LibRaw does for it
        gains = np.asarray(r.auto_whitebalance[:3]) / r.auto_whitebalance[1]
    np.testing.assert_allclose(raw.wb, gains, rtol=0.10)
    picture = read_image(develop(D30, tmp_path, "jpeg", tone="linear", wb="auto")).reshape(-1, 3).mean(axis=0)
    libraw = reference.reshape(-1, 3).mean(axis=0)
    ratios, libraw_ratios = picture[[0, 2]] / picture[1], libraw[[0, 2]] / libraw[1]
    np.testing.assert_allclose(ratios, libraw_ratios, rtol=0.10)  # the orange picture had 1.64, 0.41
    meta = raw.metadata
    assert (meta.make, meta.model, meta.date) == ("Canon", "Canon EOS D30", "2018:01:01 13:03:32")
    assert (meta.iso, float(meta.exposure_time), round(float(meta.f_number), 1), float(meta.focal_length)) == (
        100, 5.0, 5.7, 31.0)


@needs_data
@needs_exiftool
def test_info_reads_every_header_exiftool_reads(cli):
    """Make, Model, date and ISO of every stub in bad_inputs, as exiftool reports them; the X3F
    and Kyocera headers, which neither exiv2 nor LibRaw reads, through rawisp.io.vendorheaders."""
    vendor_headers = {"exiftool_stub.KyoceraRaw.raw", "exiftool_stub.Sigma.x3f", "exiftool_stub.SigmaDP2.x3f"}
    checked = set()
    for path in sorted((DATA / "bad_inputs").iterdir()):
        # printed values: exiftool -n gives a Kyocera's ISO as its code (13 for ISO 100)
        tags = by_name(exiftool(path), ("EXIF", "Composite", "MakerNotes", "SigmaRaw"))
        if "Make" not in tags:
            continue
        result = cli("info", "--json", path)
        [rec] = json.loads(result.stdout)
        if path.name in vendor_headers:  # stubs without a picture: the header and the decode error
            assert result.exit_code == 1 and rec["error"], path.name
        iso = tags.get("ISO")  # a Nikon D70s says "0 200" in its maker notes: the ISO is the last
        expected = {"make": tags["Make"], "model": tags["Model"], "date": tags.get("DateTimeOriginal"),
                    "iso": int(str(iso).split()[-1]) if iso is not None else None}
        got = {k: rec[k] for k in expected if expected[k] is not None}
        assert got == {k: v for k, v in expected.items() if v is not None}, path.name
        if path.suffix.lower() == ".crw":  # Canon's body number as exiftool prints it (a PowerShot has none)
            assert rec["serial"] == tags.get("SerialNumber"), path.name
        checked.add(path.name)
    assert len(checked) >= 23 and vendor_headers <= checked


# --- white balance choice ---------------------------------------------------------------------------


def test_wb_choices(make_dng, tmp_path):
    path, _ = make_dng("w.dng", natural_image(24, 32, seed=2), neutral=(0.5, 1.0, 0.8))
    as_shot = decode(path)
    assert as_shot.wb_source == "as-shot" and np.allclose(as_shot.wb, [2.0, 1.0, 1.25])
    user = decode(path, wb=parse_wb("3,1.5,1.5"))
    assert user.wb_source == "user" and np.allclose(user.wb, [2.0, 1.0, 1.0])
    auto = decode(path, wb="auto")
    assert auto.wb_source == "LibRaw auto" and auto.wb[1] == 1.0 and np.all(auto.wb > 0)
    # LibRaw's auto white balance runs a half-size processing: the frame is still the Bayer one
    assert auto.cfa == as_shot.cfa == "RGGB" and np.array_equal(auto.mosaic, as_shot.mosaic)
    assert np.array_equal(auto.black, as_shot.black) and auto.white == as_shot.white
    daylight = decode(path, wb="daylight")  # LibRaw knows no daylight multipliers for this DNG
    assert daylight.wb_source == "unity" and daylight.warnings[0].startswith("no daylight white balance")
    with pytest.raises(ValueError):
        parse_wb("1,2")
    with pytest.raises(ValueError):
        parse_wb("shade")


def test_wb_option_changes_the_picture(cli, make_dng, tmp_path):
    path, _ = make_dng("w.dng", np.full((24, 32, 3), 0.5), neutral=(0.5, 1.0, 0.8))
    for name, wb in (("camera", "camera"), ("warm", "4,1,1.25")):
        result = cli("develop", "--engine", "classical", "--format", "png", "--tone", "linear", "--wb", wb, path,
                     "-o", tmp_path / name)
        assert result.exit_code == 0, result.stderr
    grey = read_image(tmp_path / "camera" / "w.png").reshape(-1, 3).mean(axis=0)
    warm = read_image(tmp_path / "warm" / "w.png").reshape(-1, 3).mean(axis=0)
    assert abs(grey[0] - grey[1]) < 3  # as shot: grey stays grey
    assert warm[0] > warm[1] + 40  # red gain doubled
    bad = cli("develop", "--wb", "shade", path, "-o", tmp_path / "bad")
    assert bad.exit_code == 2 and "--wb" in bad.stderr
    info = json.loads(cli("info", "--json", path).stdout)[0]
    assert info["wb_source"] == "as-shot" and info["wb_gains"] == [2.0, 1.0, 1.25]


def test_write_metadata_into_an_existing_dng(full_source, tmp_path):
    """The entry point for TIFF-based files written elsewhere (a linear DNG): metadata in, pixels
    and DNG tags kept."""
    from rawisp.io.metadata import read_metadata, write_metadata
    from rawisp.measure import synth

    target = tmp_path / "t.dng"
    synth.srgb_to_dng(target, natural_image(30, 44, seed=4))
    with rawpy.imread(str(target)) as raw:
        before = raw.raw_image_visible.copy()
    meta = read_metadata(full_source)
    write_metadata(target, meta, "rawisp test")
    back = read_metadata(target)
    assert {k: back.exif.get(k) for k in meta.exif} == meta.exif
    assert back.xmp_values["Xmp.xmp.Rating"] == "4"
    with rawpy.imread(str(target)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, before)
        assert raw.camera_whitebalance[:3] == pytest.approx([1 / 0.55, 1.0, 1 / 0.75], rel=1e-4)


def test_values_exiv2_cannot_write_are_left_out(tmp_path):
    """Text of a damaged file that is not UTF-8, or a number too big for its type (fuzzing found
    the first as an internal error)."""
    from rawisp.io.metadata import Metadata, read_metadata
    from rawisp.io.write import write_image

    meta = Metadata(exif={"Exif.Image.Make": (2, "Ac\udcffme"), "Exif.Photo.ISOSpeedRatings": (3, "70000"),
                          "Exif.Image.Model": (2, "Model 1")})
    path = write_image(tmp_path / "x.jpg", np.zeros((8, 8, 3), np.uint8), "jpeg", metadata=meta)
    back = read_metadata(path)
    assert back.model == "Model 1" and back.make is None and back.iso is None


# --- maker notes and vendor headers, without data ---------------------------------------------------


def test_canon_maker_note_values_in_exif_terms():
    from rawisp.io.makernotes import canon_ev, canon_serial, maker_note_exif

    # Canon's EV codes: 1/32 EV, thirds coded as 12 and 20
    assert [canon_ev(c) for c in (-20, -12, 0, 12, 20, 32, 44, -64)] == [
        Fraction(-2, 3), Fraction(-1, 3), 0, Fraction(1, 3), Fraction(2, 3), 1, Fraction(4, 3), -2]
    assert canon_serial(305465770, "Canon EOS D30") == "1235-02474"  # exiftool's form for the D30's CRW
    assert canon_serial(1234, "Canon EOS 10D") == "0000001234"
    assert canon_serial(1234, "Canon EOS-1D Mark II") == "001234"
    assert canon_serial(1234, "Canon PowerShot S40") is None  # not a serial number in PowerShot CRWs
    stored = {"Exif.Image.Model": "Canon EOS D30", "Exif.Canon.SerialNumber": "305465770 4269800191",
              "Exif.CanonSi.ExposureCompensation": "65516", "Exif.CanonSi.WhiteBalance": "0",
              "Exif.CanonCs.MeteringMode": "3"}
    assert maker_note_exif(stored) == {"Exif.Photo.MeteringMode": (3, "5"), "Exif.Photo.WhiteBalance": (3, "0"),
                                       "Exif.Photo.ExposureBiasValue": (10, "-2/3"),
                                       "Exif.Photo.BodySerialNumber": (2, "1235-02474")}
    # spot, partial, centre-weighted, average; any white balance preset is EXIF's "manual"
    for canon, exif in ((1, "3"), (4, "6"), (5, "2"), (2, "1")):
        assert maker_note_exif({"Exif.CanonCs.MeteringMode": str(canon)})["Exif.Photo.MeteringMode"][1] == exif
    assert maker_note_exif({"Exif.CanonCs.MeteringMode": "0", "Exif.CanonSi.WhiteBalance": "8"}) == {
        "Exif.Photo.WhiteBalance": (3, "1")}


def x3f_bytes(props: dict[str, str]) -> bytes:
    """A minimal X3F: header, one PROP section, the section directory and its offset at the end."""
    import struct

    chars, pairs = "", []
    for name, value in props.items():
        pairs.append((len(chars), len(chars) + len(name) + 1))
        chars += f"{name}\0{value}\0"
    section = struct.pack("<4sIIIII", b"SECp", 0x20000, len(pairs), 0, 0, len(chars))
    section += b"".join(struct.pack("<II", *p) for p in pairs) + chars.encode("utf-16-le")
    header = b"FOVb" + struct.pack("<I", 0x20002) + bytes(32)
    directory = len(header) + len(section)
    return (header + section + struct.pack("<4sII", b"SECd", 0x20000, 1)
            + struct.pack("<II4s", len(header), len(section), b"PROP") + struct.pack("<I", directory))


def test_x3f_and_kyocera_headers(tmp_path):
    import io
    import struct

    from rawisp.io.metadata import read_metadata
    from rawisp.io.vendorheaders import HeaderFacts, kyocera_facts, x3f_facts

    x3f = x3f_bytes({"CAMMANUF": "SIGMA", "CAMMODEL": "SIGMA SD10", "CAMSERIAL": "02001234", "TIME": "978309395",
                     "ISO": "100", "SHUTTER": "0.00929", "APERTURE": "8.35419", "FLENGTH": "30.0", "WB_DESC": "Auto"})
    assert x3f_facts(io.BytesIO(x3f)) == HeaderFacts(make="SIGMA", model="SIGMA SD10", serial="02001234",
                                         timestamp="2001:01:01 00:36:35", iso=100, exposure_time=0.00929,
                                         f_number=8.35419, focal_length=30.0)
    assert x3f_facts(io.BytesIO(x3f[:-30])) == HeaderFacts()  # the directory cut off: nothing, no error
    kyocera = bytearray(156)
    for at, text in ((12, b"N DIGITAL"), (25, b"KYOCERA"), (33, b"2005:07:16 18:14:30")):
        kyocera[at:at + len(text)] = text[::-1]  # stored byte-reversed
    struct.pack_into(">II", kyocera, 52, 13, 56)  # ISO code 13 = 100, exposure 2^(56/8)/16000 = 1/125 s
    struct.pack_into(">I", kyocera, 88, 56)  # f/2^(56/16) = 11.3
    struct.pack_into(">I", kyocera, 112, 55)
    kyocera[124:135] = b"VS28-80/3.5"
    facts = kyocera_facts(bytes(kyocera))
    assert (facts.make, facts.model, facts.timestamp, facts.iso, facts.lens) == (
        "KYOCERA", "N DIGITAL", "2005:07:16 18:14:30", 100, "VS28-80/3.5")
    assert (facts.exposure_time, round(facts.f_number, 2), facts.focal_length) == (1 / 125, 11.31, 55)
    assert kyocera_facts(bytes(156)) is None
    # damaged values (found by mutating the stubs) are unknown, not errors
    damaged = x3f_facts(io.BytesIO(x3f_bytes({"CAMMODEL": "X", "TIME": "1e30", "ISO": "inf", "SHUTTER": "nan"})))
    assert damaged == HeaderFacts(model="X")
    struct.pack_into(">II", kyocera, 52, 99, 2**31)
    assert (kyocera_facts(bytes(kyocera)).iso, kyocera_facts(bytes(kyocera)).exposure_time) == (None, None)
    struct.pack_into(">II", kyocera, 52, 13, 56)
    (tmp_path / "a.x3f").write_bytes(x3f)
    (tmp_path / "a.raw").write_bytes(bytes(kyocera))
    sigma, contax = read_metadata(tmp_path / "a.x3f"), read_metadata(tmp_path / "a.raw")
    assert (sigma.make, sigma.model, sigma.date, sigma.iso, sigma.serial_number) == (
        "SIGMA", "SIGMA SD10", "2001:01:01 00:36:35", 100, "02001234")
    assert (str(sigma.exposure_time), float(sigma.f_number), float(sigma.focal_length)) == ("1/108", 8.4, 30.0)
    assert (contax.make, contax.model, contax.date, contax.iso, contax.lens_model) == (
        "KYOCERA", "N DIGITAL", "2005:07:16 18:14:30", 100, "VS28-80/3.5")


def test_compare_takes_wb_like_develop(cli, make_dng, tmp_path):
    from rawisp.cli import main

    [develop_wb] = [p for p in main.commands["develop"].params if p.name == "wb"]
    [compare_wb] = [p for p in main.commands["compare"].params if p.name == "wb"]
    assert (compare_wb.help, compare_wb.default) == (develop_wb.help, develop_wb.default)
    path, _ = make_dng("w.dng", np.full((48, 64, 3), 0.5), neutral=(0.5, 1.0, 0.8))
    reddish = {}
    for name, wb in (("camera", "camera"), ("warm", "4,1,1.25")):
        result = cli("compare", "--format", "png", "--tone", "linear", "--crops", "0", "--wb", wb, path,
                     "-o", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        picture = read_image(tmp_path / name / "w.compare.png").astype(int)
        reddish[name] = np.count_nonzero(picture[..., 0] > picture[..., 1] + 40)
    assert reddish["camera"] == 0 and reddish["warm"] >= 2 * 48 * 64  # both 64x48 views turned red
    assert cli("compare", "--wb", "shade", path, "-o", tmp_path / "bad").exit_code == 2
