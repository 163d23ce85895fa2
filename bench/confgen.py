"""Write a benchmark pgBackRest configuration inside chronos-db, derived from the live one.

Runs inside the container (fed to `python3 -` on stdin by bench.py), so the repository keys and the
cipher passphrase are copied from file to file there and never pass through the benchmark's
process arguments, output or logs.

Usage: python3 - CONTENDER OUTPUT STANZA REPO_PATH LOG_PATH [PG_PATH]
  CONTENDER  defaults: the live [global] section as the role rendered it (the collection's choices);
             stock: the same repository, cipher and retention, without the options the collection
             chooses (compress-type, process-max, archive-async...), so pgBackRest's own defaults apply;
             unbundled: defaults with repo1-bundle=n, a what-if showing what bundling (a collection
             default since this benchmark showed its cost) is worth.
Both get start-fast=y and archive-check=n (see bench/README.md: held equal for a fair comparison).
"""
import grp
import os
import pwd
import sys

LIVE = '/etc/pgbackrest/pgbackrest.conf'
LIVE_STANZA = 'chronos-v2'
# Options that are the collection's tuning choices (roles/pgbackrest/defaults/main.yml); the stock
# contender leaves them out so pgBackRest's defaults apply: gz level 6, process-max 1, synchronous
# archiving, one object per file.
TUNING = ('compress-type', 'compress-level', 'compress-level-network', 'process-max',
          'archive-async', 'spool-path', 'repo1-bundle')
HELD_EQUAL = {'start-fast': 'y', 'archive-check': 'n'}
WHAT_IF = {'unbundled': {'repo1-bundle': 'n'}}


def sections(path):
    result, current = {}, None
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith('[') and line.endswith(']'):
                current = result.setdefault(line[1:-1], [])
            elif current is not None and '=' in line:
                key, value = line.split('=', 1)
                current.append((key.strip(), value.strip()))
    return result


def main():
    contender, output, stanza, repo_path, log_path = sys.argv[1:6]
    pg_path = sys.argv[6] if len(sys.argv) > 6 else None
    live = sections(LIVE)
    options = [(k, v) for k, v in live['global'] if contender != 'stock' or k not in TUNING]
    overrides = dict(HELD_EQUAL, **WHAT_IF.get(contender, {}))
    overrides.update({'repo1-path': repo_path, 'log-path': log_path})
    options = [(k, v) for k, v in options if k not in overrides] + sorted(overrides.items())
    stanza_options = [(k, v) for k, v in live[LIVE_STANZA] if not (pg_path and k == 'pg1-path')]
    if pg_path:
        stanza_options.append(('pg1-path', pg_path))
    lines = ['# Written by bench/bench.py for one benchmark run; removed at its end.', '[global]']
    lines += ['%s=%s' % option for option in options]
    if contender != 'stock':
        for section in ('global:archive-push', 'global:archive-get'):
            if section in live:
                lines += ['', '[%s]' % section] + ['%s=%s' % option for option in live[section]]
    lines += ['', '[%s]' % stanza] + ['%s=%s' % option for option in stanza_options]
    old_umask = os.umask(0o027)
    try:
        with open(output + '.tmp', 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        os.chown(output + '.tmp', pwd.getpwnam('postgres').pw_uid, grp.getgrnam('postgres').gr_gid)
        os.chmod(output + '.tmp', 0o640)
        os.rename(output + '.tmp', output)
    finally:
        os.umask(old_umask)
    # The non-secret options, for the report.
    for key, value in options:
        if not any(word in key for word in ('key', 'pass', 'secret')):
            print('%s=%s' % (key, value))


if __name__ == '__main__':
    main()
