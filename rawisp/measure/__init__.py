"""How good and how fast rawisp is. Quality on known images: ``protocol`` (the ``rawisp eval``
protocol: ground-truth sRGB -> synthetic camera DNG -> development), ``synth`` (writes those
synthetic Bayer DNGs, also the tests' ground truth), ``metrics`` (PSNR, SSIM, CIEDE2000),
``evaluate`` and ``eval_report`` (the harness and its tables), ``libraw_reference`` (LibRaw's own
demosaics as reference engines), ``ground_truth`` (``rawisp compare --ground-truth``) and
``editors`` (how RAW editors read rawisp's DNGs); ``texture`` (dead-leaves texture MTF and
residual noise, numpy only, also in the training's validation). Speed: ``bench`` with ``bench_child`` (one
measurement in a fresh process), ``bench_report`` and ``bench_scene`` (the synthetic 24 MP frame);
``margin`` measures the learned engine's tile margin, ``precision`` whether a runtime or precision
(OpenVINO, bf16) changes its pictures. ``chart`` draws the example chart. One layer
with :mod:`rawisp.train`: its modules may import :mod:`rawisp.pipeline`, :mod:`rawisp.compare` and
everything below them; never :mod:`rawisp.batch`, the command line or the API.
"""
