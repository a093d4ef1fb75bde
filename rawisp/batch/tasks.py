"""The batch tasks of the command line: picklable callables that turn one :class:`rawisp.batch.runner.Job`
into an :class:`rawisp.batch.runner.Outcome` inside a worker process (engines are built there, once per
process: a cluster worker's sandbox develops many files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rawisp.batch.runner import Job, Outcome, Status
from rawisp.compare.crops import CompareError
from rawisp.compare.picture import CompareOptions, compare_file
from rawisp.engines.registry import cached_engine, make_engine
from rawisp.measure.ground_truth import compare_ground_truth
from rawisp.pipeline.compose import RenderOptions
from rawisp.pipeline.files import develop_engines, develop_file
from rawisp.stages.reconstruct import Engine, EngineOptions


@dataclass
class DevelopTask:
    """Develop one Job with a named engine."""

    engine: str
    engine_options: EngineOptions
    render: RenderOptions

    def __call__(self, job: Job) -> Outcome:
        result = develop_file(job.source, job.output, cached_engine(self.engine, self.engine_options),
                             self.render)
        return Outcome(job, Status.DONE, seconds=result.seconds, warnings=result.warnings)


@dataclass
class DevelopBothTask:
    """``--engine both``: one decode, the learned and the classical development (``job.output`` and
    ``job.also[0]``), and with ``side_by_side`` the comparison picture (``job.also[1]``)."""

    engine_options: EngineOptions
    render: RenderOptions
    side_by_side: bool = False

    def __call__(self, job: Job) -> Outcome:
        outputs = job.outputs
        engines = [cached_engine("learned", self.engine_options), cached_engine("classical")]
        result = develop_engines(job.source, {"learned": outputs[0], "classical": outputs[1]}, engines, self.render,
                                 outputs[2] if self.side_by_side else None)
        return Outcome(job, Status.DONE, seconds=result.seconds, warnings=result.warnings)


@dataclass
class CompareTask:
    """One comparison picture per job (a RAW file, or a ground-truth image)."""

    engine_options: EngineOptions
    render: RenderOptions
    options: CompareOptions
    ground_truth: frozenset[str] = frozenset()  # absolute paths of the ground-truth images
    noise: str = "mid"
    camera: str | None = None  # camera matrix of the synthetic DNGs (None: as rawisp eval)

    def engines(self) -> list[Engine]:
        return [make_engine("classical"), make_engine("learned", self.engine_options)]

    def __call__(self, job: Job) -> Outcome:
        engines = self.engines()
        try:
            if str(Path(job.source).absolute()) in self.ground_truth:
                result = compare_ground_truth(job.source, job.output, engines, self.render, self.options,
                                              self.noise, camera=self.camera)
            else:
                result = compare_file(job.source, job.output, engines, self.render, self.options)
        except CompareError as exc:
            return Outcome(job, Status.FAILED, str(exc))
        return Outcome(job, Status.DONE, result.summary(), seconds=result.seconds, warnings=result.warnings)
