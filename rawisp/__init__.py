"""rawisp: a camera RAW developer with a learned image signal processor.

Flow (one module per stage, plain dataclasses between them)::

    decode -> normalise -> reconstruct (classical | learned) -> render -> write
"""

__version__ = "0.1.0"
