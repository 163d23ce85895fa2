import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from scenario import *  # noqa: E402,F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from monitoring_lab import MonitoringLab  # noqa: E402


@pytest.fixture(scope="session")
def monitoring():
    return MonitoringLab()
