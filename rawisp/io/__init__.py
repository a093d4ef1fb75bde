"""Files in and out. Reading a RAW file: ``decode`` (LibRaw through rawpy: the mosaic, levels,
colour matrix, orientation, refusing broken files), ``whitebalance`` (the gains the file gives, or
``--wb``), ``metadata`` (EXIF and XMP with exiv2; ``makernotes`` and ``vendorheaders`` for what
exiv2 cannot read). Writing the results: ``write`` (JPEG, PNG, TIFF with the ICC profile and the
source's metadata, atomically through locked ``.part`` files), ``dng`` (the linear DNG),
``naming`` (``--name`` templates) and ``tiff`` (TIFF field types and tag numbers). The bottom
layer, with :mod:`rawisp.colour` and :mod:`rawisp.threads`: its modules import only each other,
those two and the package version, never the stages, engines or anything above them.
"""
