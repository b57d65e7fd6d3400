"""The conformance suites shipped with pytest-meshcheck (collected with --meshcheck)."""
