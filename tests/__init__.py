"""pymta's test suite (run with trial: ``python -m twisted.trial tests``)."""

from hypothesis import HealthCheck, settings

# Property tests run on shared two-core machines next to real-process tests:
# a wall-clock deadline per example would make them fail by load, not by logic.
settings.register_profile("pymta", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pymta")
