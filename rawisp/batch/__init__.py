"""Many files at once, each in its own child process: ``runner`` (inputs and output names planned
into Jobs; the local pool, ``run_batch``, with timeouts, memory limits, skipping and progress),
``tasks`` (what a worker does with one Job: develop, ``--engine both``, compare), ``cluster`` (the
same Jobs on a Dask cluster) and ``sandbox`` (a cluster worker's long-lived child process). Below
the command line and the API, above everything else: its modules may import :mod:`rawisp.measure`
(the compare task's ground truth), :mod:`rawisp.pipeline`, :mod:`rawisp.compare` and everything
below them; never :mod:`rawisp.cli` or :mod:`rawisp.api`.
"""
