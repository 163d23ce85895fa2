"""The monitoring lab of this scenario (the shared helpers come from molecule/shared/scenario.py, a pytest plugin)."""

import pytest

from monitoring_lab import MonitoringLab


@pytest.fixture(scope="session")
def monitoring():
    return MonitoringLab()
