"""Durable objects for Django.

The public API lives in its modules (``durable_core.objects``, ``durable_core.registry``,
``durable_core.exceptions``); importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
