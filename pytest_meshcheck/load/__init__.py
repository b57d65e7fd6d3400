"""Load generation: Locust in its own processes, results read from its output files.

Nothing here imports Locust (gevent's monkey patching would break pytest-xdist and the kubernetes
client in the pytest process); only the locustfiles under ``fixtures/locust`` do, in the Locust
processes. ``spec`` says what to run, ``runner`` runs it on this machine, ``incluster`` as Jobs in the cluster
(``start.load_run`` picks one from the settings), ``results`` is what it measured.
"""

from __future__ import annotations

from pytest_meshcheck.load.results import FailureEvent, LoadResult, TimelineSecond
from pytest_meshcheck.load.runner import LoadRun
from pytest_meshcheck.load.spec import LoadSpec, spec_from_settings
from pytest_meshcheck.load.start import LoadHandle, load_run

__all__ = [
    "FailureEvent",
    "LoadHandle",
    "LoadResult",
    "LoadRun",
    "LoadSpec",
    "TimelineSecond",
    "load_run",
    "spec_from_settings",
]
