"""Tools for developing this project that both the tests and the benchmarks use.

Not part of the product: nothing under staging/, integrations/ or the clients imports it,
and it is not packaged (pyproject.toml lists the product's packages only).
"""
