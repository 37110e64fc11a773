"""One hypothesis profile for every fuzz test: bounded, deterministic, quick.

derandomize: the examples are a function of the test, so CI and a laptop try the same
ones and a failure reproduces; no example database is written into the tree; no deadline
(a loaded CI machine must not turn slowness into a failure)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# Unpacking writes files: fewer, bigger examples.
FUZZ_UNPACK = settings(FUZZ, max_examples=120)
