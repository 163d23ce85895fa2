# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_pgbackrest.py against captured pgBackRest 2.45 output (fixtures/README.md): parsing of
`info --output=json`, of errors and of `verify --output=text` (harness.VERIFY_*), the command lines, and PgBackRest
on a target."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _pgbackrest as pgbr
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    PREFIX, SECRET_ENVIRONMENT, SECRETS, VERIFY_ERRORS, VERIFY_VERBOSE_ERRORS, VERIFY_VERBOSE_OK, fails, ok)

# System identifiers of the clusters the fixtures were captured from.
OLD_LAB_SYSID = 7711661904765073182   # info-no-backup.json, info-full-and-diff.json
LAB_SYSID = 7711665496204834485       # info-one-full.json ... info-after-diff.json
OTHER_SYSID = 7711666316191427927     # the cluster stanza-create-mismatch.err was captured with

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


@pytest.fixture
def pgbackrest(commands):
    """PgBackRest for chronos-v2 on this host, with the three secrets."""
    return pgbr.PgBackRest(HostTarget(), 'chronos-v2', secrets=SECRETS)


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
    ('info-after-pitr.json', 0, [LAB_SYSID],
     [dict(id='15-1', min='000000010000000000000001', max='000000020000000000000012')]),
    ('info-unreachable.json', 99, [], []),
]


@pytest.mark.parametrize('name, repo_code, system_ids, archive', PARSE_STANZA_REPOS_DB_ARCHIVE,
                         ids=ids(PARSE_STANZA_REPOS_DB_ARCHIVE))
def test_parse_stanza_repos_db_archive(captured, name, repo_code, system_ids, archive):
    stanza = stanza_of(captured, name)
    assert [(repo['key'], repo['cipher'], repo['status']['code']) for repo in stanza['repos']] == [
        (1, 'aes-256-cbc', repo_code)]
    assert [db['system_id'] for db in stanza['db']] == system_ids
    assert all(db['version'] == '15' and db['id'] == 1 and db['repo_key'] == 1 for db in stanza['db'])
    assert stanza['archive'] == [dict(entry, database=dict(id=1, repo_key=1)) for entry in archive]


BACKUP_RUNNING = [
    ('info-one-full.json', False),
    ('info-backup-running.json', True),   # captured while a full backup held the stanza lock
    ('info-missing-stanza.json', False),
]


@pytest.mark.parametrize('name, running', BACKUP_RUNNING, ids=ids(BACKUP_RUNNING))
def test_backup_running(captured, name, running):
    assert stanza_of(captured, name)['backup_running'] is running


def test_progress_fields_are_none_before_pgbackrest_reports_them(captured):
    """2.45 reports neither a running backup's size (2.48+) nor a restore's (2.56+)."""
    stanza = stanza_of(captured, 'info-backup-running.json')
    assert (stanza['backup_progress_total'], stanza['backup_progress_complete'],
            stanza['restore_progress_total'], stanza['restore_progress_complete']) == (None, None, None, None)


def test_progress_fields_of_newer_pgbackrest(captured):
    """The lock fields newer releases add (status.lock.backup.size/size-cplt, status.lock.restore), put into the
    captured 2.45 document where pgBackRest puts them."""
    raw = json.loads(captured('info-backup-running.json'))
    raw[0]['status']['lock']['backup'].update({'size': 30452680, 'size-cplt': 1048576})
    raw[0]['status']['lock']['restore'] = {'held': True, 'size': 3000, 'size-cplt': 1500}
    stanza = pgbr.parse_info(json.dumps(raw))[0]
    assert (stanza['backup_progress_total'], stanza['backup_progress_complete']) == (30452680, 1048576)
    assert (stanza['restore_progress_total'], stanza['restore_progress_complete']) == (3000, 1500)


BACKUP = dict(repo_key=1, database_id=1, backrest_version='2.45', error=False, repo_size_map=None,
              repo_delta_map=None)
PARSE_BACKUP = [
    ('info-full-diff-incr.json', 0, dict(
        BACKUP, label=F1, type='full', prior=None, start=1795512061, stop=1795512084,
        start_time='2026-11-24 09:21:01+00', stop_time='2026-11-24 09:21:24+00',
        size=30452680, delta=30452680, repo_size=3759888, repo_delta=3759888,
        wal_start='000000010000000000000002', wal_stop='000000010000000000000003',
        lsn_start='0/2000028', lsn_stop='0/3000088')),
    ('info-full-diff-incr.json', 2, dict(
        BACKUP, label=D1, type='diff', prior=F2, start=1795512221, stop=1795512223,
        start_time='2026-11-24 09:23:41+00', stop_time='2026-11-24 09:23:43+00',
        size=30526408, delta=8458, repo_size=3761968, repo_delta=464,
        wal_start='000000010000000000000007', wal_stop='000000010000000000000008',
        lsn_start='0/7000028', lsn_stop='0/8000050')),
    ('info-full-diff-incr.json', 3, dict(
        BACKUP, label=I1, type='incr', prior=D1, start=1795512225, stop=1795512226,
        start_time='2026-11-24 09:23:45+00', stop_time='2026-11-24 09:23:46+00',
        size=30526408, delta=8458, repo_size=3761968, repo_delta=464,
        wal_start='000000010000000000000009', wal_stop='00000001000000000000000A',
        lsn_start='0/9000028', lsn_stop='0/A000088')),
    ('info-full-and-diff.json', 1, dict(
        BACKUP, label='20261124-090723F_20261124-090742D', type='diff', prior='20261124-090723F',
        start=1795511262, stop=1795511264,
        start_time='2026-11-24 09:07:42+00', stop_time='2026-11-24 09:07:44+00',
        size=23243118, delta=1548554, repo_size=2839952, repo_delta=159136,
        wal_start='000000010000000000000005', wal_stop='000000010000000000000005',
        lsn_start='0/5000028', lsn_stop='0/5000100')),
]


@pytest.mark.parametrize('name, index, expected', PARSE_BACKUP, ids=['full', 'diff', 'incr', 'first-build-diff'])
def test_parse_backup(captured, name, index, expected):
    assert stanza_of(captured, name)['backups'][index] == expected


def test_parse_backup_block_incremental_maps():
    """2.46+ reports the block incremental maps' sizes in info.repository (size-map, delta-map), and for such a backup
    no repository size (src/command/info/info.c: size only when there is no size map)."""
    backup = pgbr.parse_backup({'label': 'x', 'type': 'full', 'info': {'repository': {
        'delta': 5, 'size-map': 300, 'delta-map': 200}}})
    assert (backup['repo_size_map'], backup['repo_delta_map']) == (300, 200)
    assert (backup['repo_size'], backup['repo_delta']) == (None, 5)


def test_parse_backup_tolerates_missing_fields():
    backup = pgbr.parse_backup({'label': 'x', 'type': 'full'})
    assert backup['label'] == 'x'
    assert backup['stop_time'] is None and backup['size'] is None and backup['wal_start'] is None
    assert backup['backrest_version'] is None and backup['repo_key'] is None


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
    ('info-wrong.json', 'encryption',
     "[FormatError] unable to load info file '/var/lib/pgbackrest/backup/chronos-v2/backup.info'"),
    ('info-wrong-env.json', 'encryption',
     "[FormatError] unable to load info file '/var/lib/pgbackrest/backup/chronos-v2/backup.info'"),
    ('info-unreachable.json', 'repository', "[HostConnectError] unable to get address for 'nowhere.chronos.lab'"),
]


@pytest.mark.parametrize('name, part, in_message', STANZA_PROBLEM, ids=ids(STANZA_PROBLEM))
def test_stanza_problem(captured, name, part, in_message):
    sentence, got_part, advice = pgbr.stanza_problem(stanza_of(captured, name))
    assert got_part == part
    assert sentence.startswith("pgBackRest reports stanza 'chronos-v2' as ")
    assert in_message in sentence
    assert advice == (pgbr.ERROR_PARTS[part][1] if part != 'stanza' else
                      'Create the stanza first: pgbackrest_stanza with state=present (the pgbackrest role does).')


@pytest.mark.parametrize('name', ['info-wrong.json', 'info-wrong-env.json'])
def test_stanza_problem_quotes_only_the_printable_first_line(captured, name):
    """The status message quotes what a wrong passphrase decrypts to: only its first line's printable characters reach
    the sentence (no control character, no U+FFFD that stands for an undecodable byte)."""
    sentence = pgbr.stanza_problem(stanza_of(captured, name))[0]
    assert sentence.isprintable() and '\ufffd' not in sentence.split('repo1: ')[1]


def test_stanza_problem_drops_unprintable_characters_of_the_first_line(captured):
    """In the captures the garbage starts on a later line; where it reaches the first, only printable characters are
    quoted (a control character, or U+FFFD for an undecodable byte, would make the sentence unreadable)."""
    stanza = stanza_of(captured, 'info-wrong-env.json')
    stanza['repos'][0]['status']['message'] = '[FormatError] key \x04\x1b[31m\ufffd\ufffdbad\nsecond line'
    sentence = pgbr.stanza_problem(stanza)[0]
    assert sentence.endswith('repo1: [FormatError] key [31mbad')


def test_stanza_problem_encryption_advice_names_the_passphrase(captured):
    dummy, dummy, advice = pgbr.stanza_problem(stanza_of(captured, 'info-wrong.json'))
    assert 'passphrase' in advice and 'repo1-cipher-pass' in advice


def test_a_missing_ca_file_is_not_taken_for_a_wrong_passphrase(captured):
    """What info printed in a container recreated from its image, its CA file gone with the old one."""
    stanza = stanza_of(captured, 'info-wrong-env.json')
    stanza['repos'][0]['status']['message'] = ('[CryptoError] unable to set user-defined CA certificate location: '
                                               '[2147483650] no details available')
    dummy, part, advice = pgbr.stanza_problem(stanza)
    assert part == 'ca_file'
    assert 'repo1-storage-ca-file' in advice and 'passphrase' not in advice


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
    ('restore-not-empty.err', 40, "unable to restore to path '/tmp/unit-cap/time' because it contains files "
                                  "HINT: try using --delta if this is what you intended."),
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


# --- parse_duration, utc, version_at_least ----------------------------------------------------------

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


@pytest.mark.parametrize('epoch, text', [
    (1795512084, '2026-11-24 09:21:24+00'), (0, '1970-01-01 00:00:00+00'), (1795513968.8, '2026-11-24 09:52:48+00'),
    (None, None)])
def test_utc(epoch, text):
    assert pgbr.utc(epoch) == text


@pytest.mark.parametrize('version, wanted, expected', [
    ('2.45', '2.46', False), ('2.46', '2.46', True), ('2.55.1', '2.46', True), ('2.9', '2.46', False),
    ('3.0', '2.46', True), ('2.46dev', '2.46', True)])
def test_version_at_least(version, wanted, expected):
    assert pgbr.version_at_least(version, wanted) is expected


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


# --- PgBackRest: command lines ----------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, command, options, argv', [
    (dict(stanza='chronos-v2'), 'info', ('--output=json',),
     ['pgbackrest', '--stanza=chronos-v2', '--log-level-console=off', '--log-level-stderr=warn', '--output=json',
      'info']),
    (dict(stanza='chronos-v2', config='/tmp/p.conf', binary='/opt/pgbackrest'), 'backup', ('--type=diff',),
     ['/opt/pgbackrest', '--stanza=chronos-v2', '--config=/tmp/p.conf', '--log-level-console=off',
      '--log-level-stderr=warn', '--type=diff', 'backup']),
    # repo-ls's path is an argument: it follows the command, the options precede it.
    (dict(stanza='chronos-v2'), 'repo-ls', ('--output=json', 'archive/chronos-v2/15-1', '--recurse'),
     ['pgbackrest', '--stanza=chronos-v2', '--log-level-console=off', '--log-level-stderr=warn', '--output=json',
      '--recurse', 'repo-ls', 'archive/chronos-v2/15-1']),
    # Without a stanza (pgbackrest_target_info's probes), no --stanza at all.
    (dict(stanza=''), 'check', (), ['pgbackrest', '--log-level-console=off', '--log-level-stderr=warn', 'check']),
    # version takes no option at all: pgBackRest 2.55 refuses --stanza and --log-level-console with it.
    (dict(stanza='chronos-v2', config='/tmp/p.conf'), 'version', (), ['pgbackrest', 'version']),
    # One argument each, blanks included: never split by a shell.
    (dict(stanza='chronos-v2'), 'restore', ('--type=time', '--target=2026-11-24 09:23:44+00'),
     ['pgbackrest', '--stanza=chronos-v2', '--log-level-console=off', '--log-level-stderr=warn', '--type=time',
      '--target=2026-11-24 09:23:44+00', 'restore']),
], ids=['info', 'config-binary', 'repo-ls', 'no-stanza', 'version-bare', 'blank-in-target'])
def test_command_line(kwargs, command, options, argv):
    stanza = kwargs.pop('stanza')
    assert pgbr.PgBackRest(None, stanza, **kwargs).command(command, *options) == argv


def test_secrets_go_to_the_environment_only():
    runner = pgbr.PgBackRest(None, 's', secrets=dict(SECRETS, repo_s3_key_secret=None, unknown='x'))
    assert runner.environment == {'PGBACKREST_REPO1_CIPHER_PASS': 'cipher-secret-1',
                                  'PGBACKREST_REPO1_S3_KEY': 's3-key-2'}
    assert not any(secret in ' '.join(runner.command('info')) for secret in SECRETS.values())


def test_run_hands_secrets_to_the_process_environment_only(pgbackrest, commands, captured_bytes):
    commands.expect(ok('info-one-full.json'))
    pgbackrest.stanza_info()
    call = commands.calls[0]
    assert call['env'] == SECRET_ENVIRONMENT
    assert call['user'] == 'postgres'
    assert call['argv'] == PREFIX + ['--output=json', 'info']
    assert not [arg for arg in call['argv'] for secret in SECRETS.values() if secret in arg]
    assert pgbackrest.executed_commands == [' '.join(PREFIX + ['--output=json', 'info'])]


def test_pgbackrest_options_in_the_environment_reach_pgbackrest_wherever_it_runs(pgbackrest, commands, monkeypatch):
    """PGBACKREST_IO_TIMEOUT set for the job or the module (verify.yml does) reaches pgBackRest in a container too,
    whose exec gets only the environment it is given."""
    monkeypatch.setenv('PGBACKREST_IO_TIMEOUT', '1')
    monkeypatch.setenv('PGDATA', '/not/for/pgbackrest')
    commands.expect(ok('info-one-full.json'))
    pgbackrest.stanza_info()
    assert commands.calls[0]['env'] == dict(SECRET_ENVIRONMENT, PGBACKREST_IO_TIMEOUT='1')


def test_on_keeps_binary_configuration_and_secrets(pgbackrest):
    other_target = HostTarget(os_user='other')
    other = pgbackrest.on(target=other_target, stanza='chronos')
    assert (other.target, other.stanza, other.environment) == (other_target, 'chronos', pgbackrest.environment)
    same = pgbackrest.on()
    assert (same.target, same.stanza, same.binary, same.config) == (
        pgbackrest.target, 'chronos-v2', pgbackrest.binary, pgbackrest.config)


def test_plan_records_without_running(pgbackrest, commands):
    argv = pgbackrest.plan('backup', '--type=full')
    assert argv == PREFIX + ['--type=full', 'backup']
    assert pgbackrest.executed_commands == [' '.join(argv)]
    assert commands.calls == []


# --- PgBackRest: running commands and reading their output ----------------------------------------

def test_version(pgbackrest, commands):
    commands.expect(ok('version.out'))
    assert pgbackrest.version() == '2.45'
    assert commands.calls[0]['argv'][-1] == 'version'


def test_version_that_prints_nothing(pgbackrest, commands):
    commands.expect(ok(b'\n'))
    with pytest.raises(ChronosError) as raised:
        pgbackrest.version()
    assert raised.value.msg == 'pgbackrest version printed nothing on this host.'


def test_info_reads_every_stanza(pgbackrest, commands):
    commands.expect(ok('info-after-pitr.json'))
    assert [stanza['name'] for stanza in pgbackrest.info()] == ['chronos-v2']


def test_info_not_json(pgbackrest, commands):
    commands.expect(ok(b'stanza: chronos-v2\n'))
    with pytest.raises(ChronosError) as raised:
        pgbackrest.info()
    assert raised.value.msg.startswith('Unable to parse the output of pgbackrest info --output=json: ')
    assert raised.value.extra == dict(stdout='stanza: chronos-v2\n')


def test_stanza_info_of_another_stanza(commands):
    commands.expect(ok('info-one-full.json'))
    with pytest.raises(ChronosError, match="pgbackrest info did not report stanza 'chronos'"):
        pgbr.PgBackRest(HostTarget(), 'chronos').stanza_info()


@pytest.mark.parametrize('name, part', [
    ('info-missing-stanza.json', 'stanza'), ('info-unreachable.json', 'repository'), ('info-wrong.json', 'encryption')])
def test_usable_stanza_refuses(pgbackrest, commands, name, part):
    commands.expect(ok(name))
    with pytest.raises(ChronosError) as raised:
        pgbackrest.usable_stanza('back up')
    assert raised.value.msg.startswith("Cannot back up: pgBackRest reports stanza 'chronos-v2' as ")
    assert raised.value.extra['failed_part'] == part
    assert raised.value.extra['stanza']['name'] == 'chronos-v2'


def test_usable_stanza_without_backup(pgbackrest, commands):
    commands.expect(ok('info-no-backup.json'))
    assert pgbackrest.usable_stanza('back up')['status']['code'] == 2


@pytest.mark.parametrize('name, rc, code, part, text', [
    ('backup-locked.err', 50, 50, 'lock', "unable to acquire lock on file '/tmp/pgbackrest/chronos-v2-backup.lock': "
                                          "Resource temporarily unavailable HINT: is another pgBackRest process running?"),
    ('check-archive-off.err', 87, 87, 'archiving', 'archive_mode must be enabled'),
    ('stanza-create-mismatch.err', 28, 28, 'stanza', 'backup and archive info files exist but do not match the '
                                                     'database HINT: is this the correct stanza? HINT: did an error '
                                                     'occur during stanza-upgrade?'),
])
def test_run_raises_pgbackrest_error(pgbackrest, commands, captured, name, rc, code, part, text):
    commands.expect(fails(rc, name))
    with pytest.raises(pgbr.PgBackRestError) as raised:
        pgbackrest.run('backup', '--type=full', attempt='take a full backup')
    error = raised.value
    assert error.msg == 'Unable to take a full backup: pgBackRest error [%03d]: %s. %s' % (
        code, text, pgbr.ERROR_PARTS[part][1])
    assert (error.code, error.part) == (code, part)
    assert error.extra == dict(rc=rc, stdout='', stderr=captured(name), error_code=code, failed_part=part,
                               cmd=' '.join(PREFIX + ['--type=full', 'backup']))


def test_run_error_without_error_line(pgbackrest, commands):
    commands.expect(fails(1, b'something odd\n'))
    with pytest.raises(pgbr.PgBackRestError) as raised:
        pgbackrest.run('check', advice='Look at it.')
    assert raised.value.msg == 'Unable to check: pgBackRest exited 1: something odd. Look at it.'
    assert (raised.value.code, raised.value.part) == (None, 'pgbackrest')


def test_run_error_without_any_output(pgbackrest, commands):
    commands.expect(fails(1))
    with pytest.raises(pgbr.PgBackRestError, match='pgBackRest exited 1: no error message'):
        pgbackrest.run('check')


def test_execute_returns_failures_without_raising(pgbackrest, commands):
    commands.expect(fails(50, 'backup-locked.err'))
    assert pgbackrest.execute('backup').rc == 50


def test_repo_ls(pgbackrest, commands, captured):
    commands.expect(ok('repo-ls-wal-tl2.json'))
    listing = pgbackrest.repo_ls('archive/chronos-v2/15-1/0000000200000000')
    assert listing == {
        '.': {'type': 'path'},
        '000000020000000000000012-89abf6e099f285dd73019e5bf92697bc228502ac.zst': {
            'type': 'file', 'size': 51232, 'time': 1795513971}}
    assert commands.calls[0]['argv'][-3:] == ['--output=json', 'repo-ls', 'archive/chronos-v2/15-1/0000000200000000']


def test_repo_ls_recurse(pgbackrest, commands):
    commands.expect(ok(b'{}'))
    pgbackrest.repo_ls('archive/chronos-v2/15-1', recurse=True)
    assert commands.calls[0]['argv'][-4:] == ['--output=json', '--recurse', 'repo-ls', 'archive/chronos-v2/15-1']


def test_repo_ls_not_json(pgbackrest, commands):
    commands.expect(ok(b'archive/chronos-v2/15-1\n'))
    with pytest.raises(ChronosError) as raised:
        pgbackrest.repo_ls('archive/chronos-v2/15-1')
    assert raised.value.msg.startswith('Unable to parse the output of pgbackrest repo-ls --output=json '
                                       'archive/chronos-v2/15-1: ')
    assert raised.value.extra == dict(stdout='archive/chronos-v2/15-1\n')


def test_repo_ls_timeline_1_directory(pgbackrest, commands):
    commands.expect(ok('repo-ls-wal-tl1.json'))
    listing = pgbackrest.repo_ls('archive/chronos-v2/15-1/0000000100000000')
    assert len(listing) == 25
    names = sorted(name for name in listing if name != '.')
    assert [name[:24] for name in names if name.endswith('.zst')] == [
        '0000000100000000000000%02X' % number for number in range(1, 0x13)]
    # pgBackRest also keeps each backup's .backup history file there.
    assert [name for name in names if name.endswith('.backup')] == [
        '000000010000000000000002.00000028.backup', '000000010000000000000006.00000028.backup',
        '000000010000000000000007.00000028.backup', '000000010000000000000009.00000028.backup',
        '00000001000000000000000D.00000028.backup', '000000010000000000000010.00000028.backup']


# --- stanza_mismatch / stanza_action --------------------------------------------------------------

@pytest.mark.parametrize('name, cluster, mismatch', [
    ('info-full-diff-incr.json', dict(version='15', system_id=LAB_SYSID), None),
    ('info-full-diff-incr.json', dict(version='15', system_id=OTHER_SYSID),
     "stanza 'chronos-v2' belongs to PostgreSQL 15 with system-id %s, but the cluster is PostgreSQL 15 with "
     "system-id %s" % (LAB_SYSID, OTHER_SYSID)),
    ('info-full-diff-incr.json', dict(version='16', system_id=LAB_SYSID),
     "stanza 'chronos-v2' belongs to PostgreSQL 15 with system-id %s, but the cluster is PostgreSQL 16 with "
     "system-id %s" % (LAB_SYSID, LAB_SYSID)),
    ('info-missing-stanza.json', dict(version='15', system_id=OTHER_SYSID), None),
], ids=['same', 'other-system', 'other-version', 'no-db'])
def test_stanza_mismatch(captured, name, cluster, mismatch):
    assert pgbr.stanza_mismatch(stanza_of(captured, name), cluster) == mismatch


STANZA_ACTION = [
    ('info-missing-stanza.json', 'present', OLD_LAB_SYSID, 'stanza-create'),
    ('info-no-backup.json', 'present', OLD_LAB_SYSID, None),
    ('info-full-and-diff.json', 'upgraded', OLD_LAB_SYSID, None),
    ('info-full-diff-incr.json', 'upgraded', OTHER_SYSID, 'stanza-upgrade'),
]


@pytest.mark.parametrize('name, state, system_id, action', STANZA_ACTION, ids=ids(STANZA_ACTION))
def test_stanza_action(pgbackrest, commands, name, state, system_id, action):
    commands.expect(ok(name))
    stanza, got = pgbr.stanza_action(pgbackrest, dict(version='15', system_id=system_id), state)
    assert (stanza['name'], got) == ('chronos-v2', action)


@pytest.mark.parametrize('name, state, system_id, part, text', [
    ('info-full-diff-incr.json', 'present', OTHER_SYSID, 'stanza', 'state=upgraded'),
    ('info-missing-stanza.json', 'upgraded', OTHER_SYSID, None,
     "Stanza 'chronos-v2' does not exist, so there is nothing to upgrade: create it with state=present."),
    ('info-unreachable.json', 'present', LAB_SYSID, 'repository', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong-env.json', 'upgraded', LAB_SYSID, 'encryption', 'repo1-cipher-pass'),
], ids=['other-cluster', 'nothing-to-upgrade', 'unreachable', 'wrong-passphrase'])
def test_stanza_action_refuses(pgbackrest, commands, name, state, system_id, part, text):
    commands.expect(ok(name))
    cluster = dict(version='15', system_id=system_id)
    with pytest.raises(ChronosError) as raised:
        pgbr.stanza_action(pgbackrest, cluster, state)
    assert text in raised.value.msg
    assert raised.value.extra.get('failed_part') == part
    assert raised.value.extra['cluster'] == cluster


# --- parse_verify -----------------------------------------------------------------------------------------

def test_parse_verify_of_a_sound_repository():
    report = pgbr.parse_verify(VERIFY_VERBOSE_OK.decode())
    assert (report['ok'], report['invalid']) == (True, 0)
    assert report['lines'][:2] == ['stanza: chronos-v2', 'status: ok']
    assert len(report['lines']) == 6


def test_parse_verify_counts_every_kind_of_invalid_file():
    """missing, checksum invalid, size invalid and other, of the WAL and of every backup."""
    report = pgbr.parse_verify(VERIFY_VERBOSE_ERRORS.decode())
    assert (report['ok'], report['invalid']) == (False, 3)
    assert report['lines'][1] == 'status: error'


def test_parse_verify_error_status_without_counts():
    """pgBackRest reports unusable info files with status error and no counts: not ok, though nothing was counted."""
    report = pgbr.parse_verify('stanza: chronos-v2\nstatus: error\n  No usable backup.info file\n')
    assert (report['ok'], report['invalid']) == (False, 0)
    assert report['lines'] == ['stanza: chronos-v2', 'status: error', '  No usable backup.info file']


def test_parse_verify_counts_the_short_form():
    report = pgbr.parse_verify(VERIFY_ERRORS.decode())
    assert report['ok'] is False
    assert report['invalid'] == 3
