# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore, rollback or prune on a play of more than one host is refused before anything runs (ansible-playbook,
for real, on an inventory of two hosts that are never reached)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import sys

import pytest

from ansible_collections.chronos.pgbackrest.tests.unit.harness import REPO


def play(tmp_path, playbook, *options):
    inventory = tmp_path / 'inventory.ini'
    inventory.write_text(u'[pgbackrest_databases]\ndb-one ansible_host=192.0.2.1\ndb-two ansible_host=192.0.2.2\n')
    environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                       ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    binary = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return subprocess.run([binary, '-i', str(inventory), os.path.join(REPO, 'playbooks', playbook)] + list(options),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, cwd=REPO,
                          env=environment, timeout=300, check=False)


@pytest.mark.parametrize('playbook', ['restore.yml', 'rollback.yml', 'prune.yml'])
def test_two_hosts_without_a_limit_change_nothing_and_say_why(tmp_path, playbook):
    done = play(tmp_path, playbook, '-e', 'pgbackrest_restore_confirm=true')
    assert done.returncode != 0
    assert ('This play targets 2 hosts (db-one, db-two), and a restore changes one cluster at a time: run it again '
            'with --limit <host>') in done.stdout, done.stdout[-3000:]
    # Refused on the controller: neither host was reached, nothing else ran.
    assert 'UNREACHABLE' not in done.stdout and 'Plan against the repository' not in done.stdout
    assert done.stdout.count('FAILED!') == 2


def test_one_host_or_many_on_purpose_pass_the_check(tmp_path):
    for options in (['--limit', 'db-one'], ['-e', 'pgbackrest_restore_many_hosts=true']):
        done = play(tmp_path, 'restore.yml', *options)
        # The next task needs the host, which does not exist: what matters is that the check let it through.
        assert 'This play targets' not in done.stdout, done.stdout[-3000:]
        assert 'Plan against the repository' in done.stdout, done.stdout[-3000:]
