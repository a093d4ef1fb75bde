"""The pipeline's steps, one a module, plain dataclasses between them: ``normalise`` (a decoded
RawImage -> Packed: RGGB planes at half resolution, black-subtracted, scaled to the white level,
white-balanced), ``reconstruct`` (Packed -> linear camera RGB at full resolution by an engine, and
the Engine protocol every engine meets), ``render`` (camera RGB -> sRGB pixels: colour matrix,
exposure, tone curve, dither), ``resize`` (``--long-edge``, in linear light) and ``dng_frame``
(the render step of ``--format dng``: the denoised mosaic a Bayer DNG stores and the noise left in
it, or the frame of a linear DNG, and the thumbnail). One layer
with :mod:`rawisp.engines` (the engines take Packed; normalise lays out the planes in the model
contract's order): its modules may import the engines, :mod:`rawisp.io`, :mod:`rawisp.colour` and
:mod:`rawisp.threads`; never the composer (:mod:`rawisp.pipeline`) or anything above it.
"""
