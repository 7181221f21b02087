"""Metrics, dataset loaders and benchmarks."""
