"""The pipeline composed, from a RAW file to a written picture: ``compose`` holds the one composer,
``raw_to_pixels`` (normalise -> reconstruct -> render for one or several engines from one
normalise, timed by a Stopwatch), with ``save_picture`` and the options of a development
(RenderOptions); ``files`` develops whole files with it (decode -> compose -> write: one engine,
or several from one decode with the side-by-side picture of :mod:`rawisp.compare`). One layer with
:mod:`rawisp.compare`: its modules may import it, :mod:`rawisp.stages`, :mod:`rawisp.engines`,
:mod:`rawisp.io`, :mod:`rawisp.colour` and :mod:`rawisp.threads`; never :mod:`rawisp.measure`,
:mod:`rawisp.batch` or the command line and API.
"""
