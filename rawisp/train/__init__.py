"""Training of the LW-ISP model (needs the ``train`` extra: torch).

Only produces ONNX files plus their model cards; the runtime never imports this package.
"""
