"""Benchmark readers, one module per on-disk layout; tables in *_tables.py."""
