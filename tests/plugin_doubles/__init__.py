"""Test-double plugins: each misbehaves, or records what the kernel did, on purpose.

They stand in for third-party plugins in the plugin tests and are loaded by
dotted name (``LLMOS_PLUGINS=plugin_doubles.bad``); no feature of llmos
depends on them. The kernel subprocess imports them with the tests folder on
``PYTHONPATH``.
"""
