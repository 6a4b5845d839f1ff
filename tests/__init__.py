"""pymta's test suite (run with trial: ``python -m twisted.trial tests``)."""

import os

from hypothesis import HealthCheck, settings

# Property tests run on shared two-core machines next to real-process tests:
# a wall-clock deadline per example would make them fail by load, not by logic.
# ``make test`` (and CI) draws the same examples every run, so a red build always
# means a change broke something; HYPOTHESIS_PROFILE=explore draws new random
# examples on every run, to hunt for bugs (``make explore`` runs the property tests ten times).
settings.register_profile(
    "pymta", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
settings.register_profile(
    "explore", deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pymta"))
