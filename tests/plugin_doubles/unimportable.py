"""Test double: a plugin module that fails while being imported.

The plugin manager must log it and go on with the others.
"""

raise ImportError("the unimportable plugin fails to import on purpose")
