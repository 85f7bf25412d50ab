"""Benchmarks of a real executor against bare Docker Engine floors (``python -m bench``)."""
