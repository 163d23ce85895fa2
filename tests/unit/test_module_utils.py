# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_pgbackrest.py against captured pgBackRest 2.45 output (fixtures/README.md)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _pgbackrest as pgbr

# System identifiers of the clusters the fixtures were captured from.
OLD_LAB_SYSID = 7711661904765073182   # info-no-backup.json, info-full-and-diff.json
LAB_SYSID = 7711665496204834485       # info-one-full.json ... info-after-diff.json

F1 = '20261124-092101F'
F2 = '20261124-092311F'
D1 = '20261124-092311F_20261124-092341D'
I1 = '20261124-092311F_20261124-092345I'
D2 = '20261124-092311F_20261124-092445D'


def ids(table):
    """Name parametrized rows after their first column (the fixture file)."""
    return [row[0] for row in table]


def stanza_of(captured, name):
    stanzas = pgbr.parse_info(captured(name))
    assert len(stanzas) == 1
    return stanzas[0]


# --- parse_info / parse_stanza -----------------------------------------------------------------------

PARSE_INFO = [
    ('info-missing-stanza.json', 1, 'missing stanza path', [], [], []),
    ('info-no-backup.json', 2, 'no valid backups', [], [], []),
    ('info-full-and-diff.json', 0, 'ok', ['20261124-090723F', '20261124-090723F_20261124-090742D'],
     ['full', 'diff'], [None, '20261124-090723F']),
    ('info-one-full.json', 0, 'ok', [F1], ['full'], [None]),
    ('info-backup-running.json', 0, 'ok', [F1], ['full'], [None]),
    ('info-full-diff-incr.json', 0, 'ok', [F1, F2, D1, I1], ['full', 'full', 'diff', 'incr'], [None, None, F2, D1]),
    ('info-after-diff.json', 0, 'ok', [F1, F2, D1, I1, D2], ['full', 'full', 'diff', 'incr', 'diff'],
     [None, None, F2, D1, F2]),
    ('info-unreachable.json', 99, 'other', [], [], []),
    ('info-wrong.json', 99, 'other', [], [], []),
    ('info-wrong-env.json', 99, 'other', [], [], []),
]


@pytest.mark.parametrize('name, code, message, labels, types, priors', PARSE_INFO, ids=ids(PARSE_INFO))
def test_parse_info(captured, name, code, message, labels, types, priors):
    stanza = stanza_of(captured, name)
    assert stanza['name'] == 'chronos-v2'
    assert stanza['status'] == dict(code=code, message=message)
    assert stanza['cipher'] == 'aes-256-cbc'
    assert len(stanza['backups']) == len(labels)
    assert [backup['label'] for backup in stanza['backups']] == labels
    assert [backup['type'] for backup in stanza['backups']] == types
    assert [backup['prior'] for backup in stanza['backups']] == priors


PARSE_STANZA_REPOS_DB_ARCHIVE = [
    ('info-missing-stanza.json', 1, [], []),
    ('info-no-backup.json', 2, [OLD_LAB_SYSID], [dict(id='15-1', min=None, max=None)]),
    ('info-full-and-diff.json', 0, [OLD_LAB_SYSID],
     [dict(id='15-1', min='000000010000000000000001', max='000000010000000000000005')]),
    ('info-full-diff-incr.json', 0, [LAB_SYSID],
     [dict(id='15-1', min='000000010000000000000001', max='00000001000000000000000A')]),
    ('info-unreachable.json', 99, [], []),
]


@pytest.mark.parametrize('name, repo_code, system_ids, archive', PARSE_STANZA_REPOS_DB_ARCHIVE, ids=ids(PARSE_STANZA_REPOS_DB_ARCHIVE))
def test_parse_stanza_repos_db_archive(captured, name, repo_code, system_ids, archive):
    stanza = stanza_of(captured, name)
    assert [(repo['key'], repo['cipher'], repo['status']['code']) for repo in stanza['repos']] == [
        (1, 'aes-256-cbc', repo_code)]
    assert [db['system_id'] for db in stanza['db']] == system_ids
    assert all(db['version'] == '15' and db['id'] == 1 for db in stanza['db'])
    assert stanza['archive'] == archive


BACKUP_RUNNING = [
    ('info-one-full.json', False),
    ('info-backup-running.json', True),   # captured while a full backup held the stanza lock
    ('info-missing-stanza.json', False),
]


@pytest.mark.parametrize('name, running', BACKUP_RUNNING, ids=ids(BACKUP_RUNNING))
def test_backup_running(captured, name, running):
    assert stanza_of(captured, name)['backup_running'] is running


PARSE_BACKUP = [
    ('info-full-diff-incr.json', 0, dict(
        label=F1, type='full', prior=None, start=1795512061, stop=1795512084,
        start_time='2026-11-24 09:21:01+00', stop_time='2026-11-24 09:21:24+00',
        size=30452680, delta=30452680, repo_size=3759888, repo_delta=3759888,
        wal_start='000000010000000000000002', wal_stop='000000010000000000000003',
        lsn_start='0/2000028', lsn_stop='0/3000088', repo_key=1, error=False)),
    ('info-full-diff-incr.json', 2, dict(
        label=D1, type='diff', prior=F2, start=1795512221, stop=1795512223,
        start_time='2026-11-24 09:23:41+00', stop_time='2026-11-24 09:23:43+00',
        size=30526408, delta=8458, repo_size=3761968, repo_delta=464,
        wal_start='000000010000000000000007', wal_stop='000000010000000000000008',
        lsn_start='0/7000028', lsn_stop='0/8000050', repo_key=1, error=False)),
    ('info-full-diff-incr.json', 3, dict(
        label=I1, type='incr', prior=D1, start=1795512225, stop=1795512226,
        start_time='2026-11-24 09:23:45+00', stop_time='2026-11-24 09:23:46+00',
        size=30526408, delta=8458, repo_size=3761968, repo_delta=464,
        wal_start='000000010000000000000009', wal_stop='00000001000000000000000A',
        lsn_start='0/9000028', lsn_stop='0/A000088', repo_key=1, error=False)),
    ('info-full-and-diff.json', 1, dict(
        label='20261124-090723F_20261124-090742D', type='diff', prior='20261124-090723F',
        start=1795511262, stop=1795511264,
        start_time='2026-11-24 09:07:42+00', stop_time='2026-11-24 09:07:44+00',
        size=23243118, delta=1548554, repo_size=2839952, repo_delta=159136,
        wal_start='000000010000000000000005', wal_stop='000000010000000000000005',
        lsn_start='0/5000028', lsn_stop='0/5000100', repo_key=1, error=False)),
]


@pytest.mark.parametrize('name, index, expected', PARSE_BACKUP, ids=['full', 'diff', 'incr', 'first-build-diff'])
def test_parse_backup(captured, name, index, expected):
    assert stanza_of(captured, name)['backups'][index] == expected


def test_parse_backup_tolerates_missing_fields():
    backup = pgbr.parse_backup({'label': 'x', 'type': 'full'})
    assert backup['label'] == 'x'
    assert backup['stop_time'] is None and backup['size'] is None and backup['wal_start'] is None


@pytest.mark.parametrize('text', ['{}', '"chronos-v2"', '', 'stanza: chronos-v2\n    status: ok'])
def test_parse_info_rejects_what_is_not_a_list_of_stanzas(text):
    with pytest.raises(ValueError):
        pgbr.parse_info(text)


@pytest.mark.parametrize('name', ['info-wrong.json', 'info-wrong-env.json'])
def test_info_wrong_fixtures_hold_undecodable_bytes_and_control_characters(captured_bytes, name):
    """Guards the fixtures themselves: the wrong-passphrase captures must keep the bytes that make them hard."""
    raw = captured_bytes(name)
    with pytest.raises(UnicodeDecodeError):
        raw.decode('utf-8')
    message = raw.split(b'"message":"[FormatError]')[1].split(b'"}')[0]
    # pgBackRest 2.45 writes the garbage into the JSON string unescaped, control characters included.
    assert any(byte < 0x20 for byte in bytearray(message))


# --- stanza_problem / current_db -------------------------------------------------------------------

@pytest.mark.parametrize('name', ['info-no-backup.json', 'info-full-and-diff.json', 'info-full-diff-incr.json',
                                  'info-backup-running.json'])
def test_stanza_problem_none_when_usable(captured, name):
    assert pgbr.stanza_problem(stanza_of(captured, name)) is None


STANZA_PROBLEM = [
    ('info-missing-stanza.json', 'stanza', "'missing stanza path' (status 1): repo1: missing stanza path"),
    ('info-wrong.json', 'encryption', "[FormatError] unable to load info file '/var/lib/pgbackrest/backup/chronos-v2/backup.info'"),
    ('info-wrong-env.json', 'encryption', "[FormatError] unable to load info file '/var/lib/pgbackrest/backup/chronos-v2/backup.info'"),
    ('info-unreachable.json', 'repository', "[HostConnectError] unable to get address for 'nowhere.chronos.lab'"),
]


@pytest.mark.parametrize('name, part, in_message', STANZA_PROBLEM, ids=ids(STANZA_PROBLEM))
def test_stanza_problem(captured, name, part, in_message):
    sentence, got_part, advice = pgbr.stanza_problem(stanza_of(captured, name))
    assert got_part == part
    assert sentence.startswith("pgBackRest reports stanza 'chronos-v2' as ")
    assert in_message in sentence
    assert '\n' not in sentence
    assert advice


def test_stanza_problem_encryption_advice_names_the_passphrase(captured):
    dummy, dummy, advice = pgbr.stanza_problem(stanza_of(captured, 'info-wrong.json'))
    assert 'passphrase' in advice and 'repo1-cipher-pass' in advice


CURRENT_DB = [
    ('info-missing-stanza.json', None),
    ('info-no-backup.json', dict(id=1, system_id=OLD_LAB_SYSID, version='15', repo_key=1)),
    ('info-after-diff.json', dict(id=1, system_id=LAB_SYSID, version='15', repo_key=1)),
]


@pytest.mark.parametrize('name, expected', CURRENT_DB, ids=ids(CURRENT_DB))
def test_current_db(captured, name, expected):
    assert pgbr.current_db(stanza_of(captured, name)) == expected


def test_current_db_is_highest_id():
    stanza = dict(db=[dict(id=2, system_id=20, version='16'), dict(id=1, system_id=10, version='15')])
    assert pgbr.current_db(stanza)['system_id'] == 20


# --- parse_error / error_part ----------------------------------------------------------------------

PARSE_ERROR_ON_STDERR = [
    ('check-archive-off.err', 87, 'archive_mode must be enabled'),
    # The WARN and its HINT come first and are not the error.
    ('backup-archive-off.err', 87, 'archive_mode must be enabled'),
    ('backup-locked.err', 50, "unable to acquire lock on file '/tmp/pgbackrest/chronos-v2-backup.lock': "
                              "Resource temporarily unavailable HINT: is another pgBackRest process running?"),
    ('stanza-create-mismatch.err', 28, 'backup and archive info files exist but do not match the database '
                                       'HINT: is this the correct stanza? HINT: did an error occur during stanza-upgrade?'),
    ('check-mismatch.err', 28, 'backup and archive info files exist but do not match the database '
                               'HINT: is this the correct stanza? HINT: did an error occur during stanza-upgrade?'),
]


@pytest.mark.parametrize('name, code, text', PARSE_ERROR_ON_STDERR, ids=ids(PARSE_ERROR_ON_STDERR))
def test_parse_error_on_stderr(captured, name, code, text):
    assert pgbr.parse_error('', captured(name)) == (code, text)


def test_parse_error_reads_stdout_when_stderr_has_none(captured):
    assert pgbr.parse_error(captured('check-archive-off.err'), '') == (87, 'archive_mode must be enabled')


@pytest.mark.parametrize('stdout, stderr', [
    ('', ''),
    (None, None),
    ('pgBackRest 2.45\n', ''),
    ('', "WARN: option 'repo1-retention-full' is not set\n      HINT: to retain full backups indefinitely\n"),
])
def test_parse_error_without_error(stdout, stderr):
    assert pgbr.parse_error(stdout, stderr) == (None, None)


def test_parse_error_stops_at_the_next_unindented_line():
    stderr = 'ERROR: [050]: first\n       HINT: more\nWARN: later\n       HINT: not part of it\n'
    assert pgbr.parse_error('', stderr) == (50, 'first HINT: more')


@pytest.mark.parametrize('code, part', [
    (87, 'archiving'), (82, 'archiving'), (68, 'archiving'),
    (50, 'lock'),
    (28, 'stanza'), (44, 'stanza'), (51, 'stanza'), (58, 'stanza'),
    (29, 'encryption'), (95, 'encryption'),
    (49, 'repository'), (105, 'repository'), (103, 'repository'),
    (56, 'database'), (38, 'database'),
    (31, 'configuration'), (37, 'configuration'),
    (25, 'pgbackrest'), (None, 'pgbackrest'),
])
def test_error_part(code, part):
    got_part, advice = pgbr.error_part(code)
    assert got_part == part
    assert advice.endswith('.')


def test_error_parts_do_not_overlap():
    seen = {}
    for part, (codes, dummy) in pgbr.ERROR_PARTS.items():
        for code in codes:
            assert code not in seen, 'code %s is in %s and %s' % (code, seen.get(code), part)
            seen[code] = part


# --- parse_duration -------------------------------------------------------------------------------

@pytest.mark.parametrize('value, seconds', [
    ('24h', 86400), ('90m', 5400), ('7d', 604800), ('3600', 3600), ('1w', 604800), ('45s', 45),
    (3600, 3600), (' 2h ', 7200), ('0', 0),
])
def test_parse_duration(value, seconds):
    assert pgbr.parse_duration(value) == seconds


@pytest.mark.parametrize('value', ['', 'h', '24x', '1.5h', '-1h', '24 hours', '24H', '1d2h', None])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match='is not a duration'):
        pgbr.parse_duration(value)


# --- newest_backup ------------------------------------------------------------------------------

@pytest.mark.parametrize('name, wanted, newer_than, label', [
    ('info-full-diff-incr.json', None, None, I1),
    ('info-full-diff-incr.json', 'full', None, F2),
    ('info-full-diff-incr.json', 'diff', None, D1),        # the newest full or diff; the incr after it does not count
    ('info-full-diff-incr.json', 'incr', None, I1),
    ('info-full-diff-incr.json', 'full', 1795512217, F2),  # stopped exactly at the bound: still fresh
    ('info-full-diff-incr.json', 'full', 1795512218, None),
    ('info-full-diff-incr.json', 'diff', 1795512224, None),
    ('info-full-diff-incr.json', 'incr', 1795512224, I1),
    ('info-full-diff-incr.json', 'diff', 1795512100, D1),
    ('info-full-diff-incr.json', 'full', 1795512000, F2),
    ('info-one-full.json', 'diff', None, F1),              # a full satisfies a diff request...
    ('info-one-full.json', 'incr', 1795512084, F1),        # ...and an incr request
    ('info-full-and-diff.json', 'full', 1795511262, None),  # a fresh diff does not satisfy a full request
    ('info-full-and-diff.json', 'diff', 1795511262, '20261124-090723F_20261124-090742D'),
    ('info-no-backup.json', 'diff', None, None),
])
def test_newest_backup(captured, name, wanted, newer_than, label):
    stanza = stanza_of(captured, name)
    types = pgbr.BACKUP_COVERS[wanted] if wanted else None
    backup = pgbr.newest_backup(stanza, types, newer_than=newer_than)
    assert (backup['label'] if backup else None) == label


@pytest.mark.parametrize('wanted, satisfied_by', [
    ('full', ['full']),
    ('diff', ['full', 'diff']),
    ('incr', ['full', 'diff', 'incr']),
])
def test_backup_covers(wanted, satisfied_by):
    assert sorted(pgbr.BACKUP_COVERS[wanted]) == sorted(satisfied_by)


def test_newest_backup_skips_backups_with_error(captured):
    stanza = stanza_of(captured, 'info-full-diff-incr.json')
    stanza['backups'][-1]['error'] = True
    assert pgbr.newest_backup(stanza)['label'] == D1


# --- read_cluster_identity ------------------------------------------------------------------------

@pytest.mark.parametrize('system_id, version', [
    (LAB_SYSID, '15'),
    (OLD_LAB_SYSID, '16'),
    (1, '17'),
    (2 ** 64 - 1, '15'),
])
def test_read_cluster_identity(make_cluster, system_id, version):
    assert pgbr.read_cluster_identity(make_cluster(system_id, version)) == (version, system_id)


def test_read_cluster_identity_missing_dir(tmp_path):
    with pytest.raises((IOError, OSError)):
        pgbr.read_cluster_identity(str(tmp_path / 'nowhere'))


# --- PgBackRest command lines ---------------------------------------------------------------------

class FakeModule(object):
    def __init__(self, **params):
        self.params = params

    def get_bin_path(self, name, required=False):
        return '/usr/bin/%s' % name


@pytest.mark.parametrize('params, command, options, argv', [
    (dict(stanza='chronos-v2'), 'info', ('--output=json',),
     ['/usr/bin/pgbackrest', '--stanza=chronos-v2', '--log-level-console=off', '--log-level-stderr=warn',
      '--output=json', 'info']),
    (dict(stanza='chronos-v2', config='/tmp/p.conf', binary='/opt/pgbackrest'), 'backup', ('--type=diff',),
     ['/opt/pgbackrest', '--stanza=chronos-v2', '--config=/tmp/p.conf', '--log-level-console=off',
      '--log-level-stderr=warn', '--type=diff', 'backup']),
])
def test_command_line(params, command, options, argv):
    assert pgbr.PgBackRest(FakeModule(**params)).command(command, *options) == argv


def test_secrets_go_to_the_environment_only():
    runner = pgbr.PgBackRest(FakeModule(stanza='s', repo_cipher_pass='p1', repo_s3_key='k1', repo_s3_key_secret='s1'))
    assert runner.environment == {'PGBACKREST_REPO1_CIPHER_PASS': 'p1', 'PGBACKREST_REPO1_S3_KEY': 'k1',
                                  'PGBACKREST_REPO1_S3_KEY_SECRET': 's1'}
    assert not any(secret in ' '.join(runner.command('info')) for secret in ('p1', 'k1', 's1'))
