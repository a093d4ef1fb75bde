"""Bundled ONNX models and their JSON model cards."""
