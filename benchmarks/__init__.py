"""Reproducible speed and memory measurements; run each as a module from the repository root:
python -m benchmarks.<name> (figures in BENCHMARKS.md)."""
