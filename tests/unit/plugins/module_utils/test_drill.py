# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_drill.py: the restore drill's refusals, its scratch place (a directory in tmp_path, or a
scratch container of the fake Docker engine), the restore it asks pgBackRest for, the configuration it writes, and
its removal also on failure."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _places
from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerScratch
from ansible_collections.chronos.pgbackrest.plugins.module_utils._drill import Drill, Settings
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostScratch
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

from ansible_collections.chronos.pgbackrest.tests.unit.harness import BIN, HISTORY_2, PREFIX, fails, ok, psql_rows, wal_listing

I2 = '20261124-092311F_20261124-095026I'
D1 = '20261124-092311F_20261124-092341D'
LIVE = '/var/lib/postgresql/15/main'
CONTROLDATA = b'Database cluster state: shut down\nmax_connections setting: 200\nmax_worker_processes setting: 8\n' \
              b'max_wal_senders setting: 10\nmax_prepared_xacts setting: 0\nmax_locks_per_xact setting: 64\n'


@pytest.fixture
def quiet_ports(monkeypatch):
    """Nothing listens on any port (the drill reads /proc/net)."""
    monkeypatch.setattr(_places, 'port_listening', lambda port: False)


@pytest.fixture
def live(host, monkeypatch):
    """The live host target; its postgres user is this process's user (no uid 999 needed)."""
    monkeypatch.setattr(HostTarget, 'user_ids', lambda self, user: (os.getuid(), os.getgid()))
    return host


def settings(tmp_path, **changes):
    values = dict(path=str(tmp_path / 'drill' / 'scratch'), port=5433)
    values.update(changes)
    return Settings(**values)


# --- _port_listening ------------------------------------------------------------------------------------

PROC_TCP = ('  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
            '   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1\n'
            '   1: 0100007F:1539 0100007F:D2A4 06 00000000:00000000 00:00000000 00000000   101        0 2 1\n')
PROC_UNIX = ('Num       RefCount Protocol Flags    Type St Inode Path\n'
             '0000000000000000: 00000002 00000000 00010000 0001 01 30 /var/run/postgresql/.s.PGSQL.5434\n')


@pytest.mark.parametrize('port, listening', [(5432, True), (5433, False), (5434, True), (5435, False)],
                         ids=['tcp-listen', 'tcp-time-wait', 'unix-socket', 'nothing'])
def test_port_listening(monkeypatch, port, listening):
    import io
    tables = {'/proc/net/tcp': PROC_TCP, '/proc/net/tcp6': PROC_TCP.splitlines(True)[0], '/proc/net/unix': PROC_UNIX}
    monkeypatch.setattr(_places, 'open', lambda path: io.StringIO(tables[path]), raising=False)
    assert _places.port_listening(port) is listening


# --- refusals -------------------------------------------------------------------------------------------

def test_settings_defaults():
    defaults = Settings()
    assert (defaults.path, defaults.port, defaults.database, defaults.query, defaults.timeout, defaults.recovery_target,
            defaults.keep, defaults.stanza) == ('/var/lib/postgresql/pgbackrest-drill', 5433, 'postgres',
                                                'SELECT count(*) FROM pg_class', 600, None, False, None)


@pytest.mark.parametrize('path, port, message', [
    ('drill', 5433, "the drill path 'drill' must be an absolute path at least two levels deep"),
    ('/drill', 5433, "the drill path '/drill' must be an absolute path at least two levels deep"),
    (LIVE, 5433, 'the drill path %s and the live data directory %s are the same or lie inside one another' % (LIVE, LIVE)),
    (LIVE + '/drill', 5433, 'are the same or lie inside one another'),
    ('/var/lib/postgresql/15', 5433, 'are the same or lie inside one another'),
    ('/var/lib/postgresql/drill', 5432, "the drill port 5432 is the live cluster's port"),
])
def test_host_scratch_refusals(live, quiet_ports, path, port, message):
    refusal = HostScratch(live, LIVE, Settings(path=path, port=port)).refusal()
    assert message in refusal


def test_host_scratch_refuses_a_directory_it_did_not_make(live, quiet_ports, tmp_path):
    (tmp_path / 'drill' / 'scratch').mkdir(parents=True)
    (tmp_path / 'drill' / 'scratch' / 'precious').write_text('x')
    refusal = HostScratch(live, LIVE, settings(tmp_path)).refusal()
    assert refusal == "%s exists and is not a drill's scratch directory (no drill.conf): move it away" % (
        tmp_path / 'drill' / 'scratch')
    (tmp_path / 'drill' / 'scratch' / 'drill.conf').write_text(_places.MARKER)
    # A drill's scratch directory, but no record of the drill that made it: kept, for all the drill knows.
    assert ' was kept by an earlier drill (keep)' in HostScratch(live, LIVE, settings(tmp_path)).refusal()


def test_host_scratch_left_by_an_interrupted_drill_is_replaced(live, quiet_ports, tmp_path, commands):
    scratch = HostScratch(live, LIVE, settings(tmp_path))
    scratch.create('chronos-v2')
    (tmp_path / 'drill' / 'scratch' / 'drill.conf').write_text(_places.MARKER)
    (tmp_path / 'drill' / 'scratch' / 'half-restored').write_text('x')
    again = HostScratch(live, LIVE, settings(tmp_path))
    assert again.refusal() is None
    again.create('chronos-v2')
    assert os.listdir(str(tmp_path / 'drill' / 'scratch')) == []
    again.remove()
    assert not (tmp_path / 'drill' / 'scratch').exists() and again.record() is None


def test_host_scratch_kept_on_purpose_survives_the_next_drill(live, quiet_ports, tmp_path, commands):
    kept = HostScratch(live, LIVE, settings(tmp_path, keep=True))
    kept.create('chronos')
    (tmp_path / 'drill' / 'scratch' / 'drill.conf').write_text(_places.MARKER)
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg == (
        'Restore drill refused: %s was kept by an earlier drill (keep) (stanza chronos): a drill never removes what it '
        'did not create. Remove it with playbooks/restore_drill.yml -e pgbackrest_drill_remove=true once done with it, '
        'or drill into another pgbackrest_drill_path and pgbackrest_drill_port. Nothing was changed.'
        % (tmp_path / 'drill' / 'scratch'))
    assert raised.value.extra == dict(refused=True)
    assert os.listdir(str(tmp_path / 'drill' / 'scratch')) == ['drill.conf'] and commands.calls == []
    # Removed when asked.
    assert Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).remove() is True
    assert not (tmp_path / 'drill' / 'scratch').exists()


def test_a_drill_record_others_could_write_is_not_believed(live, quiet_ports, tmp_path, commands, state_dir):
    scratch = HostScratch(live, LIVE, settings(tmp_path))
    scratch.create('chronos-v2')
    (tmp_path / 'drill' / 'scratch' / 'drill.conf').write_text(_places.MARKER)
    os.chown(scratch._record_path(), 65534, 65534)
    assert ' was kept by an earlier drill' in HostScratch(live, LIVE, settings(tmp_path)).refusal()


def test_host_scratch_refuses_a_busy_port(live, tmp_path, monkeypatch):
    monkeypatch.setattr(_places, 'port_listening', lambda port: port == 5433)
    assert HostScratch(live, LIVE, settings(tmp_path)).refusal() == 'something already listens on port 5433'


def test_drill_refused_changes_nothing(live, commands, tmp_path, monkeypatch):
    monkeypatch.setattr(_places, 'port_listening', lambda port: True)
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg == 'Restore drill refused: something already listens on port 5433. Nothing was changed.'
    assert raised.value.extra == dict(refused=True)
    assert not (tmp_path / 'drill').exists() and commands.calls == []


# --- a drill on a host --------------------------------------------------------------------------------

def lookups(info='info-after-pitr.json'):
    return [ok(info), ok(wal_listing()), ok(HISTORY_2)]


def drilled(data, newest='1795513900', query=(('271',),)):
    """What the drill runs once pgBackRest restored: configure, start, recover, read, check, query."""
    return [ok(), ok(), ok(),                       # move the restored server configuration aside
            ok(CONTROLDATA),                        # pg_controldata
            ok(),                                   # mkdir the socket directory
            ok(),                                   # pg_ctl start
            ok(),                                   # pg_ctl status: alive
            ok(psql_rows(('f', 'f'))),              # promoted
            ok(psql_rows((newest,))),               # the newest restored transaction
            ok(),                                   # pg_amcheck
            ok(psql_rows(*query))]


def test_drill_on_a_host(live, commands, quiet_ports, tmp_path, clock):
    scratch = tmp_path / 'drill' / 'scratch'
    data = str(scratch / 'data')
    commands.expect(*lookups() + [ok()] + drilled(data))
    drill = Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path))
    result = drill.run()
    assert commands.names == ['info', 'repo-ls', 'repo-get', 'restore', 'sh', 'sh', 'sh', 'pg_controldata', 'mkdir',
                              'pg_ctl', 'pg_ctl', 'psql', 'psql', 'pg_amcheck', 'psql']
    restore = commands.calls[3]
    assert restore['argv'] == PREFIX + [
        '--pg1-path=%s' % data, '--set=%s' % I2, '--archive-mode=off', '--tablespace-map-all=%s/tablespaces' % data,
        '--recovery-option=restore_command=pgbackrest --stanza=chronos-v2 --pg1-path=%s --no-archive-async archive-get '
        '%%f "%%p"' % data, '--type=default', '--target-timeline=2', 'restore']
    socket = str(scratch / 'socket')
    assert commands.calls[9]['argv'] == [
        BIN + '/pg_ctl', '-D', data, '-l', data + '/drill.log', '-o',
        "-p 5433 -c listen_addresses='' -c unix_socket_directories=%s -c archive_mode=off -c hot_standby=off" % socket,
        '-w', '-t', '600', 'start']
    assert commands.calls[13]['argv'] == [BIN + '/pg_amcheck', '--install-missing', '-h', socket, '-p', '5433', '-U',
                                          'postgres', '-d', 'postgres']
    assert result == dict(status='ok', stanza='chronos-v2', backup_set=I2, target='latest', timeline=2,
                          restore_seconds=0, files_seconds=0, recovery_seconds=0,
                          newest_transaction_age_seconds=int(clock.now) - 1795513900, amcheck='ok',
                          query_result=['271'], scratch=str(scratch), kept_running=False, connect=None)
    assert drill.report(result) == [
        'Backup set %s of stanza chronos-v2 (target latest, timeline 2) restored into %s.' % (I2, scratch),
        'Restore time: 0 s (files 0 s, recovery 0 s)',
        'Age of the newest restored transaction: %d s' % (int(clock.now) - 1795513900),
        'pg_amcheck on postgres: ok',
        'Query (SELECT count(*) FROM pg_class) returned: 271',
        'The scratch copy was removed; the live cluster was not touched.']
    # The scratch directory is gone; the live cluster's commands all went to the scratch port and socket.
    assert not scratch.exists()
    assert all('5432' not in call['argv'] for call in commands.calls[4:])


def test_drill_configuration(live, commands, quiet_ports, tmp_path):
    scratch = tmp_path / 'drill' / 'scratch'
    commands.expect(*lookups() + [ok()] + drilled(str(scratch / 'data')))
    Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path, keep=True)).run()
    conf = (scratch / 'data' / 'postgresql.conf').read_text()
    assert conf.splitlines() == [
        _places.MARKER, 'port = 5433', "listen_addresses = ''", "unix_socket_directories = '%s'" % (scratch / 'socket'),
        'unix_socket_permissions = 0700', 'archive_mode = off', 'hot_standby = off', "cluster_name = 'pgbackrest-drill'",
        'max_connections = 200', 'max_worker_processes = 8', 'max_wal_senders = 10', 'max_prepared_transactions = 0',
        'max_locks_per_transaction = 64']
    assert (scratch / 'data' / 'pg_hba.conf').read_text() == 'local all all trust\n'
    assert (scratch / 'drill.conf').read_text() == _places.MARKER + '\n'
    assert oct(os.stat(str(scratch / 'data' / 'postgresql.conf')).st_mode & 0o777) == oct(0o600)
    assert [call['argv'][:3] for call in commands.calls[4:7]] == [['sh', '-c', 'test ! -e "$1" || mv "$1" "$1.restored"']] * 3


def test_drill_kept_running(live, commands, quiet_ports, tmp_path):
    commands.expect(*lookups() + [ok()] + drilled(str(tmp_path / 'drill' / 'scratch' / 'data')))
    drill = Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path, keep=True))
    result = drill.run()
    assert result['kept_running'] is True
    assert result['connect'] == 'psql -h %s -p 5433 -U postgres -d postgres' % (tmp_path / 'drill' / 'scratch' / 'socket')
    assert drill.report(dict(result, newest_transaction_age_seconds=None))[2:] == [
        'Age of the newest restored transaction: none replayed', 'pg_amcheck on postgres: ok',
        'Query (SELECT count(*) FROM pg_class) returned: 271',
        'The scratch cluster keeps running: %s on %s; remove it with the same playbook and -e pgbackrest_drill_remove=true '
        'once done.' % (result['connect'], tmp_path / 'drill' / 'scratch')]
    assert (tmp_path / 'drill' / 'scratch').is_dir()


def test_drill_to_a_time(live, commands, quiet_ports, tmp_path):
    data = str(tmp_path / 'drill' / 'scratch' / 'data')
    commands.expect(ok('info-after-pitr.json'), ok(wal_listing()), ok(), *drilled(data, newest=''))
    result = Drill(live, PgBackRest(live, 'chronos-v2'), LIVE,
                   settings(tmp_path, recovery_target='2026-11-24 09:23:44+00')).run()
    # Timeline 1 at that time: no history to read.
    assert commands.calls[2]['argv'][-5:] == ['--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
                                              '--target-timeline=1', 'restore']
    assert (result['backup_set'], result['target'], result['timeline'], result['newest_transaction_age_seconds']) == (
        D1, '2026-11-24 09:23:44+00', 1, None)


def test_drill_of_another_stanza(live, commands, quiet_ports, tmp_path):
    """An older stanza (the guide's `chronos`) is drilled with keep=True to pull data out of it."""
    commands.expect(ok(b'[]'))
    with pytest.raises(ChronosError, match="pgbackrest info did not report stanza 'chronos'"):
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path, stanza='chronos')).run()
    assert commands.calls[0]['argv'][1] == '--stanza=chronos'


def test_drill_holds_the_live_stanzas_lock(live, commands, quiet_ports, tmp_path):
    with StanzaLock('chronos-v2', 'scheduled full backup'):
        with pytest.raises(StanzaLock.Busy):
            Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert commands.calls == []


def test_drill_without_backup(live, commands, quiet_ports, tmp_path):
    commands.expect(ok('info-no-backup.json'))
    with pytest.raises(ChronosError, match='^Stanza chronos-v2 has no backup to drill. Nothing was changed.$'):
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()


def test_drill_before_the_first_backup(live, commands, quiet_ports, tmp_path):
    commands.expect(ok('info-after-pitr.json'), ok(wal_listing()))
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path, recovery_target='2026-11-24 09:00:00+00')).run()
    assert raised.value.msg == ('No backup of stanza chronos-v2 stopped before 2026-11-24 09:00:00+00. Nothing was '
                                'changed.')


def test_drill_without_room(live, commands, quiet_ports, tmp_path, monkeypatch):
    monkeypatch.setattr(HostScratch, 'free', lambda self: 10 * 2 ** 20)
    commands.expect(*lookups())
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg == ('Restore drill refused: the backup holds 29 MB and only 10 MB are free for %s. Nothing '
                                'was changed.' % (tmp_path / 'drill' / 'scratch'))
    assert raised.value.extra == dict(refused=True)


def test_a_failed_restore_removes_the_scratch_place(live, commands, quiet_ports, tmp_path):
    commands.expect(*lookups() + [fails(55, b'ERROR: [055]: unable to open missing file\n')])
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg.startswith("Unable to restore backup set %s into the drill's %s: pgBackRest error [055]" % (
        I2, tmp_path / 'drill' / 'scratch'))
    assert not (tmp_path / 'drill' / 'scratch').exists()


def test_a_recovery_that_stops_short(live, commands, quiet_ports, tmp_path):
    scratch = tmp_path / 'drill' / 'scratch'
    data = str(scratch / 'data')
    log = b'LOG:  starting\nFATAL:  recovery ended before configured recovery target was reached\n'

    def started_then_crashed(call):
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, 'postmaster.pid'), 'w') as handle:
            handle.write('999999\n')
        return 1, b'', b'pg_ctl: could not start server\n'
    # The last ok(): pg_ctl stop -m immediate at removal.
    commands.expect(*lookups() + [ok()] + drilled(data)[:5] + [started_then_crashed, fails(3), ok(log), ok()])
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg == ('Restore drill failed: the scratch cluster did not recover: FATAL:  recovery ended before '
                                'configured recovery target was reached (the target lies after the last transaction in '
                                'the archived WAL: pick an earlier time, or drill the latest)')
    assert commands.calls[-1]['argv'] == [BIN + '/pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop']
    assert not scratch.exists()


def test_corruption_found_by_pg_amcheck(live, commands, quiet_ports, tmp_path):
    answers = drilled(str(tmp_path / 'drill' / 'scratch' / 'data'))
    answers[9] = fails(2, b'btree index "public.accounts_pkey":\n    ERROR:  item order invariant violated\nmore\nlines\n')
    commands.expect(*lookups() + [ok()] + answers[:10])
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).run()
    assert raised.value.msg == ('Restore drill failed: pg_amcheck found corruption in database postgres of the restored '
                                'copy: btree index "public.accounts_pkey":     ERROR:  item order invariant violated more')


# --- a drill beside a container ---------------------------------------------------------------------------

@pytest.fixture
def live_container(docker, tmp_path):
    conf = tmp_path / 'pgbackrest.conf'
    conf.write_bytes(b'[global]\nrepo1-storage-ca-file=/etc/ssl/chronos/ca.crt\n')
    docker.add_container(
        env=['PGDATA=/var/lib/postgresql/data', 'POSTGRES_USER=chronos', 'POSTGRES_PASSWORD=the-password'],
        mounts=[{'Type': 'bind', 'Source': str(conf), 'Destination': '/etc/pgbackrest/pgbackrest.conf'}],
        files={'/etc/pgbackrest/pgbackrest.conf': (conf.read_bytes(), 999, 999, 0o600),
               '/etc/ssl/chronos/ca.crt': (b'CA', 0, 0, 0o644)})
    return ContainerTarget('chronos-db', client=docker)


def test_container_scratch(live_container, docker, commands):
    scratch = ContainerScratch(live_container, '/var/lib/postgresql/data', Settings(port=5433))
    assert scratch.refusal() is None
    commands.expect(ok())
    target, data = scratch.create('chronos-v2')
    created = docker.created[0]
    assert created['name'] == 'chronos-db-pgbackrest-drill'
    assert created['labels'] == {_places.DRILL_LABEL: 'chronos-db', _places.KEEP_LABEL: 'no',
                                 'chronos.pgbackrest.drill-stanza': 'chronos-v2'}
    assert (created['network_mode'], created['extra_hosts']) == ('chronos-lab', {'s3.chronos.lab': '172.18.0.2'})
    # Nothing of the live container's environment (POSTGRES_PASSWORD) in the scratch container's configuration.
    assert 'environment' not in created
    drill = docker.containers.get('chronos-db-pgbackrest-drill')
    assert drill.files == {'/etc/pgbackrest/pgbackrest.conf': (b'[global]\nrepo1-storage-ca-file=/etc/ssl/chronos/ca.crt\n',
                                                               999, 999, 0o600),
                           '/etc/ssl/chronos/ca.crt': (b'CA', 0, 0, 0o644)}
    assert (target.name, target.pg_user, target.pg_port, target.socket_path) == (
        'chronos-db-pgbackrest-drill', 'chronos', 5433, '/tmp')
    assert data == '/var/lib/postgresql/pgbackrest-drill/data'
    assert commands.calls[0]['argv'] == ['install', '-d', '-o', 'postgres', '-m', '0700',
                                         '/var/lib/postgresql/pgbackrest-drill']
    assert commands.calls[0]['where'] == 'chronos-db-pgbackrest-drill'
    scratch.remove()
    assert drill.removed


def test_container_scratch_refuses_a_container_of_the_same_name(live_container, docker):
    docker.add_container(name='chronos-db-pgbackrest-drill', labels={'app': 'mine'})
    assert ContainerScratch(live_container, '/var/lib/postgresql/data', Settings()).refusal() == (
        "a container named chronos-db-pgbackrest-drill exists and is not this drill's: remove or rename it")


def test_container_scratch_replaces_a_drills_leftover(live_container, docker, commands):
    leftover = docker.add_container(name='chronos-db-pgbackrest-drill', labels={
        _places.DRILL_LABEL: 'chronos-db', _places.KEEP_LABEL: 'no'})
    scratch = ContainerScratch(live_container, '/var/lib/postgresql/data', Settings())
    assert scratch.refusal() is None
    commands.expect(ok())
    scratch.create('chronos-v2')
    assert leftover.removed


@pytest.mark.parametrize('labels', [{_places.KEEP_LABEL: 'yes'}, {}], ids=['kept', 'made-before-drills-said'])
def test_container_scratch_kept_by_a_drill_is_left_alone(live_container, docker, labels):
    kept = docker.add_container(name='chronos-db-pgbackrest-drill', labels=dict(labels, **{
        _places.DRILL_LABEL: 'chronos-db'}))
    assert ContainerScratch(live_container, '/var/lib/postgresql/data', Settings()).refusal() == (
        "Container 'chronos-db-pgbackrest-drill' was kept by an earlier drill (keep): a drill never removes what it "
        "did not create. Remove it with playbooks/restore_drill.yml -e pgbackrest_drill_remove=true once done with it, "
        "or drill into another pgbackrest_drill_path and pgbackrest_drill_port")
    assert not kept.removed


def test_container_scratch_on_the_host_network_checks_the_port(live_container, monkeypatch):
    live_container.container.attrs['HostConfig']['NetworkMode'] = 'host'
    monkeypatch.setattr(_places, 'port_listening', lambda port: True)
    assert ContainerScratch(live_container, '/var/lib/postgresql/data', Settings()).refusal() == (
        'something already listens on port 5433 of this host')


# --- removing a drill left running (keep) -----------------------------------------------------------------------

def kept_drill(scratch):
    """What a drill with keep=True leaves: the scratch directory with drill.conf, the cluster running in data/."""
    (scratch / 'data').mkdir(parents=True)
    (scratch / 'drill.conf').write_text(_places.MARKER + '\n')
    (scratch / 'data' / 'postmaster.pid').write_text('%d\n' % os.getpid())


def test_remove_a_drill_left_running(live, commands, tmp_path, monkeypatch):
    """The scratch cluster still listens on the drill port: that is no reason to keep it."""
    monkeypatch.setattr(_places, 'port_listening', lambda port: port == 5433)
    scratch = tmp_path / 'drill' / 'scratch'
    kept_drill(scratch)
    commands.expect(ok())
    assert Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).remove() is True
    assert commands.calls[0]['argv'] == [BIN + '/pg_ctl', '-D', str(scratch / 'data'), '-m', 'immediate', '-w', 'stop']
    assert commands.calls[0]['user'] == 'postgres'
    assert not scratch.exists() and (tmp_path / 'drill').is_dir()


def test_remove_in_check_mode_touches_nothing(live, commands, quiet_ports, tmp_path):
    scratch = tmp_path / 'drill' / 'scratch'
    kept_drill(scratch)
    assert Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).remove(check_mode=True) is True
    assert scratch.is_dir() and commands.calls == []


def test_remove_without_a_drill_changes_nothing(live, commands, quiet_ports, tmp_path):
    assert Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).remove() is False
    assert commands.calls == []


def test_remove_refuses_a_directory_no_drill_made(live, commands, quiet_ports, tmp_path):
    scratch = tmp_path / 'drill' / 'scratch'
    scratch.mkdir(parents=True)
    (scratch / 'precious').write_text('x')
    with pytest.raises(ChronosError) as raised:
        Drill(live, PgBackRest(live, 'chronos-v2'), LIVE, settings(tmp_path)).remove()
    assert raised.value.msg == ("Not removed: %s exists and is not a drill's scratch directory (no drill.conf): move it "
                                "away. Nothing was changed." % scratch)
    assert (scratch / 'precious').read_text() == 'x'


@pytest.mark.parametrize('case', ['path-holds-the-live-cluster', 'live-port-over-a-foreign-directory'])
def test_remove_never_deletes_what_no_drill_made(live, commands, quiet_ports, tmp_path, case):
    live_data = tmp_path / 'pg' / '15' / 'main'
    live_data.mkdir(parents=True)
    (live_data / 'PG_VERSION').write_text('15\n')
    if case == 'path-holds-the-live-cluster':
        path, port, precious = tmp_path / 'pg', 5433, live_data / 'PG_VERSION'
    else:
        path, port, precious = tmp_path / 'srv' / 'reports', 5432, tmp_path / 'srv' / 'reports' / 'q3.csv'
        path.mkdir(parents=True)
        precious.write_text('x')
    drill = Drill(live, PgBackRest(live, 'chronos-v2'), str(live_data), Settings(path=str(path), port=port))
    try:
        drill.remove()
    except ChronosError:
        pass
    assert precious.exists()


def test_remove_a_drill_container_left_running(live_container, docker, commands):
    leftover = docker.add_container(name='chronos-db-pgbackrest-drill', labels={_places.DRILL_LABEL: 'chronos-db'})
    drill = Drill(live_container, PgBackRest(live_container, 'chronos-v2'), '/var/lib/postgresql/data', Settings())
    assert drill.remove(check_mode=True) is True and not leftover.removed
    assert drill.remove() is True and leftover.removed
    assert drill.remove() is False


def test_remove_refuses_a_container_no_drill_made(live_container, docker):
    foreign = docker.add_container(name='chronos-db-pgbackrest-drill', labels={'app': 'mine'})
    drill = Drill(live_container, PgBackRest(live_container, 'chronos-v2'), '/var/lib/postgresql/data', Settings())
    with pytest.raises(ChronosError, match="^Not removed: a container named chronos-db-pgbackrest-drill exists and is not "
                                           "this drill's: remove or rename it. Nothing was changed.$"):
        drill.remove()
    assert not foreign.removed
