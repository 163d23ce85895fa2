"""Write a benchmark pgBackRest configuration inside the bench lab's database host, derived from the live one.

Runs inside the container (fed to `python3 -` on stdin by bench.py), so the repository keys and the
cipher passphrase are copied from file to file there and never pass through the benchmark's
process arguments, output or logs.

Usage: python3 - CONTENDER OUTPUT STANZA REPO_PATH LOG_PATH
  CONTENDER  defaults: the live [global] section as the role rendered it (the collection's choices);
             stock: the same repository, cipher and retention, without the options the collection
             chooses (compress-type, process-max, archive-async, bundling, block incremental...), so
             pgBackRest's own defaults apply;
             unblocked: defaults without repo1-block, a what-if where the defaults have block incremental
             (pgBackRest 2.46 and later, a posix repository), showing what it costs and saves on the same release;
             blocked: defaults with repo1-block=y, the same what-if where the defaults leave it off (S3).
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
# archiving, one object per file, no block incremental.
TUNING = ('compress-type', 'compress-level', 'compress-level-network', 'process-max',
          'archive-async', 'spool-path', 'repo1-bundle', 'repo1-block')
HELD_EQUAL = {'start-fast': 'y', 'archive-check': 'n'}
# Options a what-if leaves out, so pgBackRest's default (n) applies.
WHAT_IF_DROPS = {'unblocked': ('repo1-block',), 'blocked': ('repo1-block',)}
# Options a what-if adds.
WHAT_IF_ADDS = {'blocked': {'repo1-block': 'y'}}


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
    live = sections(LIVE)
    left_out = TUNING if contender == 'stock' else WHAT_IF_DROPS.get(contender, ())
    options = [(k, v) for k, v in live['global'] if k not in left_out]
    overrides = dict(HELD_EQUAL, **WHAT_IF_ADDS.get(contender, {}))
    overrides.update({'repo1-path': repo_path, 'log-path': log_path})
    options = [(k, v) for k, v in options if k not in overrides] + sorted(overrides.items())
    lines = ['# Written by bench/bench.py for one benchmark run, in the bench lab it removes at its end.', '[global]']
    lines += ['%s=%s' % option for option in options]
    commands = [] if contender == 'stock' else sorted(name for name in live if name.startswith('global:'))
    for section in commands:
        lines += ['', '[%s]' % section] + ['%s=%s' % option for option in live[section]]
    lines += ['', '[%s]' % stanza] + ['%s=%s' % option for option in live[LIVE_STANZA]]
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
    for section in commands:
        for key, value in live[section]:
            print('[%s] %s=%s' % (section, key, value))


if __name__ == '__main__':
    main()
