"""Benchmark and diagnostic scripts, run with `python -m benchmarks.<name> --help`.

`unet_speed` compares the speed and memory of the zoo's `unet` with a hand-written U-Net and two
PyPI packages, and `layer_profile` times each layer of one model. docs/benchmarks.md describes
the method and records the results.
"""
