"""Last: the secret sweep over everything the scenario did (molecule/shared/secret_sweep.py)."""

from scenario import MANAGED
from secret_sweep import check_no_secret_leaked


def test_no_secret_leaked_into_process_arguments_readable_files_the_cron_log_or_the_metrics(argument_watch):
    check_no_secret_leaked(argument_watch, managed_container=MANAGED)
