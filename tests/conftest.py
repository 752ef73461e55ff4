import os

from hypothesis import HealthCheck, settings

# Native calls are fast but CI machines are shared: no per-example deadline.
settings.register_profile("default", deadline=None, max_examples=200)
settings.register_profile("ci", deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")
