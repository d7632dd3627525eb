"""Speed and memory benchmarks of the zoo's models; see docs/benchmarks.md.

Run `python -m benchmarks.unet_speed --help` from the repository root.
"""
