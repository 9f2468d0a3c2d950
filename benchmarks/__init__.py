"""Benchmarks: speed and memory measured on generated data, results written as JSON.

Targets live here, never in the test suite: a test asserts behaviour, a benchmark measures it.
"""
