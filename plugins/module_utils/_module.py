# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection shares: the options that say where PostgreSQL and pgBackRest live
(documented in the pgbackrest doc fragment), the target and PgBackRest built from them, and one way to turn
a ChronosError into fail_json, always with executed_commands."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest
from ansible_collections.chronos.pgbackrest.plugins.module_utils._drivers import make_target
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import (
    put_back, recorded_settings, settings_path)


def common_argument_spec():
    return dict(
        stanza=dict(type='str', required=True),
        config=dict(type='path'),
        binary=dict(type='path'),
        repo_cipher_pass=dict(type='str', no_log=True),
        repo_s3_key=dict(type='str', no_log=True),
        repo_s3_key_secret=dict(type='str', no_log=True),
        container=dict(type='str'),
        os_user=dict(type='str', default='postgres'),
        pg_user=dict(type='str'),
        pg_port=dict(type='int', default=5432),
        pg_socket_path=dict(type='path', default='/var/run/postgresql'),
        pg_bin_path=dict(type='path'),
        pg_service=dict(type='str', default='postgresql'),
        stop_timeout=dict(type='int', default=60, aliases=['container_stop_timeout']),
    )


def resolve_pg_path(params, target):
    """The data directory: as given; else the container's PGDATA; else the one site.yml recorded for the stanza in the
    scheduled jobs' settings (PostgreSQL may be down during an incident, so the server cannot be asked)."""
    if params.get('pg_path'):
        return params['pg_path']
    if target.pgdata:
        return target.pgdata
    recorded = recorded_settings(params['stanza']).get('pg_path')
    if not recorded:
        raise ChronosError('pg_path is required: the data directory (site.yml has not recorded one for stanza %s in %s). '
                           'Nothing was changed.' % (params['stanza'], settings_path(params['stanza'])))
    return recorded


def secrets(params):
    return dict((name, params.get(name)) for name in ('repo_cipher_pass', 'repo_s3_key', 'repo_s3_key_secret'))


class ModuleRun(object):
    """One run of a module: module.target, module.pgbackrest, and `with run:` turning errors into fail_json.

        run = ModuleRun(argument_spec, supports_check_mode=True)
        with run:
            stanza = run.pgbackrest.usable_stanza('back up')
            run.exit(changed=False, stanza=stanza)
    """

    def __init__(self, argument_spec=None, puts_back=False, **kwargs):
        """puts_back: a module that acts on the target first puts back what the collection placed there and a
        recreated container lost (put_back); read-only modules write nothing."""
        self.puts_back = puts_back
        self.put_back = []
        spec = common_argument_spec()
        spec.update(argument_spec or {})
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.target = None
        self.pgbackrest = None
        self._ended = False

    def __enter__(self):
        try:
            self.target = make_target(self.params)
        except ChronosError as exc:
            self.module.fail_json(msg=exc.msg, executed_commands=[], **exc.extra)
        self.pgbackrest = PgBackRest(self.target, self.params['stanza'], config=self.params.get('config'),
                                     binary=self.params.get('binary'), secrets=secrets(self.params))
        if self.puts_back and not self.check_mode:
            try:
                self.put_back = put_back(self.target, recorded_settings(self.params['stanza']).get('installed'))
            except ChronosError as exc:
                self.fail(exc.msg, **exc.extra)
        return self

    def __exit__(self, kind, exc, trace):
        if self.target is not None:
            self.target.close()
        if exc is None or self._ended or isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return False
        if isinstance(exc, ChronosError):
            self.fail(exc.msg, **exc.extra)
        if isinstance(exc, _files.UntrustedPath):
            self.fail(untrusted_message(exc), refused=True)
        self.fail('%s: %s' % (type(exc).__name__, exc), exception=''.join(traceback.format_exception(kind, exc, trace)))
        return False

    @property
    def executed_commands(self):
        return self.target.executed_commands if self.target else []

    def exit(self, **result):
        self._ended = True
        if self.put_back:
            result['put_back'] = self.put_back
            result['changed'] = True
        self.module.exit_json(executed_commands=self.executed_commands, **result)

    def fail(self, msg, **extra):
        self._ended = True
        extra.pop('executed_commands', None)
        self.module.fail_json(msg=msg, executed_commands=self.executed_commands, **extra)
