"""The upgrade gate: move a running mesh from one Istio release to another under load, and judge
whether traffic survived within the error budget (``suites/test_upgrade.py`` drives it)."""
