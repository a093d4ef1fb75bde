"""The reconstruction engines, which turn Packed planes into linear camera RGB: ``classical``
(bilinear, NumPy, strip by strip) and ``learned`` (the LW-ISP network, tile by tile), built by name
in ``registry`` (what ``--engine`` chooses from). Beside them what the learned engine needs:
``runtime`` (what runs its network: OpenVINO on the CPU where installed, else onnxruntime, and in
which precision), ``contract`` (the model's inputs, noise planes, scale, stride and card, which
:mod:`rawisp.train` meets from the other side) and the noise it is told, chosen by
``noise_choice`` from the file's NoiseProfile, ``camera_noise`` (darktable's profiles, the EXIF
prior) and ``noise_net`` (the learned blind estimate); ``noise`` is the hand-made estimate it is
measured against; ``grain`` puts back the share of the removed noise that ``--grain`` asks for.
One layer with :mod:`rawisp.stages`: its modules may import the stages,
:mod:`rawisp.io`, :mod:`rawisp.colour` and :mod:`rawisp.threads`; never torch, the composer
(:mod:`rawisp.pipeline`) or anything above it.
"""
