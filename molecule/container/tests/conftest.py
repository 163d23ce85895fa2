import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from scenario import *  # noqa: E402,F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
