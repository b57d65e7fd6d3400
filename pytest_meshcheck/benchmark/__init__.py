"""The benchmark: what the mesh costs and how fast it reacts, measured the same way every run,
saved under a name and compared with a saved run (see docs/benchmarks.md).

Layering: this package sits beside ``checks`` (suites use it; it uses checks, load, install, kube
and report) and speaks only public protocols, so the same code measures the lab and EKS.

- ``metrics``     the catalogue: units, which way is better, noise floors (the regression rule)
- ``record``      one run as data (metrics, load shape, environment), its JSON form
- ``store``       saving and loading records under ``<reports-dir>/benchmarks/``
- ``compare``     a run against a baseline: regressions and warnings
- ``table``       the before/after and results tables (text and HTML)
- ``load_shapes`` the gateway and bypass load measurements (Locust, warm-up discarded)
- ``bypass``      the reference copy of the app outside the mesh
- ``lag``         observability lag of a new client in Prometheus and Kiali
- ``convergence`` time from applying a VirtualService until traffic follows it
- ``assemble``    measurements + environment -> record
- ``reporting``   Allure attachments, key figures and the summary section
"""

from __future__ import annotations
