"""The users' chronos-db in its official layouts (molecule/shared/container_tests.py), and the restores every layout
gets (molecule/shared/restore_tests.py); the scenarios container and container18 both run this file."""

from container_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from container_tests import check_no_secret_in_created_containers
from restore_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import


def test_no_secret_is_in_the_configuration_of_any_container_the_collection_created(watcher):
    check_no_secret_in_created_containers(watcher)
