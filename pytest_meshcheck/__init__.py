"""pytest-meshcheck: a pytest plugin that gates service-mesh changes.

Importing this package must stay cheap: the pytest11 entry point loads ``plugin`` in every pytest
run of every project that has the plugin installed, with or without ``--meshcheck``.
"""

from __future__ import annotations

__version__ = "0.1.0"
