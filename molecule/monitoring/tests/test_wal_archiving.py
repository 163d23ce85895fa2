"""WAL archiving that survives its repository on a database host (molecule/shared/archiving_tests.py), after every
other alert test: its outage and its second cluster would show in their alerts."""

from archiving_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
