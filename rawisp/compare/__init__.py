"""The side-by-side picture of ``rawisp compare`` and ``rawisp develop --engine both
--side-by-side``: ``picture`` develops a RAW with each engine from one decode through the composer
and lays the results out as labelled columns; ``crops`` chooses the 100% detail crops, ``layout``
computes the geometry and ``drawing`` draws the pixels (text, frames, the difference column). One
layer with :mod:`rawisp.pipeline`: its modules may import the pipeline, :mod:`rawisp.stages`,
:mod:`rawisp.engines`, :mod:`rawisp.io` and :mod:`rawisp.colour`; never :mod:`rawisp.measure`
(a comparison against a ground truth, with its scores, is :mod:`rawisp.measure.ground_truth`),
:mod:`rawisp.batch` or the command line and API.
"""
