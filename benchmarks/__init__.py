"""Benchmarks of eodrisk (not tests): see benchmarks/README.md and `make bench`."""
