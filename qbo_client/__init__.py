"""Framework-free QuickBooks Online client (no Django imports).

* :mod:`qbo_client.config`: ``QboConfig``, the plain settings.
* :mod:`qbo_client.oauth`: connect, exchange, refresh, revoke (intuit-oauth).
* :mod:`qbo_client.tokens`: ``TokenSet``, the ``TokenStore`` protocol, ``MemoryTokenStore``.
* :mod:`qbo_client.client`: ``QboClient`` for customers and jobs (python-quickbooks).
* :mod:`qbo_client.ratelimit`: the per-realm limiter shared through Redis.
* :mod:`qbo_client.errors`: the classified error types.
* :mod:`qbo_client.names`: display-name sanitising and query escaping.
* :mod:`qbo_client.emulator`: a local QBO for tests, demos and benchmarks.
"""
