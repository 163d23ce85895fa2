#!/usr/bin/env bash
# Run `ansible-test sanity` for the chronos.pgbackrest collection on Python 3.11, without
# reaching any host but PyPI.
#
# ansible-test has to run from a path ending in ansible_collections/<namespace>/<name>, so the
# collection is copied (rsync) to $ROOT/.build/sanity/ansible_collections/chronos/pgbackrest
# and tested there. The copy gets a git repository of its own: without one ansible-test would
# walk up to this repository's .git and list the copy's files from there (none once .build/ is
# git-ignored). Its .gitignore still applies: ignored files are not tested, as in a clean clone.
# Results land in that copy's tests/output/; its .tmp/ holds the delegation virtualenv, and
# ~/.ansible/test/venv/ the per-test virtualenvs, which later runs reuse.
#
# Usage: scripts/sanity.sh [extra `ansible-test sanity` arguments, e.g. --test pep8 -v]
# Environment:
#   SANITY_PYTHON  the Python version to test with (default: 3.11, this machine's python3; 3.12 and 3.13 come
#                  from pyenv, put on PATH here when it has them)
#   SANITY_SOURCE  collection source tree to test (default: the repository root)
#   SANITY_VENV    virtualenv holding ansible-test (default: $ROOT/.venv)
#   SANITY_WAIT    seconds to wait for a virtualenv still being installed (default: 600)
# Exit status: that of ansible-test (non-zero when any sanity test fails).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOURCE=$(cd "${SANITY_SOURCE:-$ROOT}" && pwd)
VENV=${SANITY_VENV:-$ROOT/.venv}
ANSIBLE_TEST="$VENV/bin/ansible-test"
NAMESPACE=chronos
NAME=pgbackrest
PYTHON_VERSION=${SANITY_PYTHON:-3.11}
COLLECTIONS="$ROOT/.build/sanity/ansible_collections"
WORK="$COLLECTIONS/$NAMESPACE/$NAME"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'sanity.sh: %s\n' "$*" >&2; exit 2; }

# --- ansible-test itself ------------------------------------------------------------------------
wait_for_ansible_test() {
  if [[ ! -d "$VENV" && -x "$ROOT/scripts/bootstrap.sh" && -z "${SANITY_VENV:-}" ]]; then
    log "no virtualenv at $VENV: running scripts/bootstrap.sh venv"
    "$ROOT/scripts/bootstrap.sh" venv
  fi
  local waited=0 limit=${SANITY_WAIT:-600}
  # The virtualenv may still be being filled by a bootstrap running alongside.
  until [[ -x "$ANSIBLE_TEST" ]] && "$ANSIBLE_TEST" --version >/dev/null 2>&1; do
    ((waited == 0)) && log "waiting up to ${limit}s for $ANSIBLE_TEST"
    ((waited >= limit)) && die "$ANSIBLE_TEST is not usable; run scripts/bootstrap.sh venv"
    sleep 5
    waited=$((waited + 5))
  done
}

# --- pip bootstrap stand-in ----------------------------------------------------------------------
# ansible-test bootstraps pip into each empty virtualenv with a get-pip script that it downloads
# from a host out of reach here, unless ~/.ansible/test/cache/get_pip_<version>.py exists.
# ansible-test runs that file (as __main__) with the pip options and requirements as arguments,
# e.g. `--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel`.
pip_bootstrap_version() {
  local src version
  src=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
  version=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$src/_internal/python_requirements.py" | head -n1)
  echo "${version:-24.2}"
}

install_get_pip_stand_in() {
  local version path
  version=$(pip_bootstrap_version)
  path="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  [[ -s "$path" ]] && return
  log "writing pip bootstrap stand-in $path"
  mkdir -p "$(dirname "$path")"
  cat >"$path.tmp" <<'GET_PIP'
"""Stand-in for ansible-test's get-pip script (its download host is out of reach here).

Installs the pip that the interpreter bundles (ensurepip), then the requested pip release from
PyPI, trusting the system CA bundle. Written by chronos.pgbackrest's scripts/sanity.sh.
"""
import os
import subprocess
import sys

CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'


def run(cmd):
    status = subprocess.call(cmd)
    if status:
        sys.exit(status)


def main():
    args = sys.argv[1:]
    no_setuptools = '--no-setuptools' in args
    no_wheel = '--no-wheel' in args
    args = [a for a in args if a not in ('--no-setuptools', '--no-wheel', '--no-pip')]
    run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
    cert = os.environ.get('PIP_CERT') or (CA_BUNDLE if os.path.exists(CA_BUNDLE) else None)
    pip = [sys.executable, '-m', 'pip']
    run(pip + ['install'] + (['--cert', cert] if cert else []) + args)
    # Like get-pip.py, leave setuptools and wheel out unless asked for (ensurepip adds setuptools).
    unwanted = [p for p, skip in (('setuptools', no_setuptools), ('wheel', no_wheel)) if skip]
    if unwanted:
        subprocess.call(pip + ['uninstall', '--yes', '--quiet', '--disable-pip-version-check'] + unwanted,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
GET_PIP
  mv "$path.tmp" "$path"
}

# --- the copy under ansible_collections/ -----------------------------------------------------------
sync_copy() {
  log "copying $SOURCE to $WORK"
  mkdir -p "$WORK"
  # Excluded paths are also kept from deletion on the receiving side: the copy's own .git and
  # tests/output (results and the cached delegation virtualenv) survive between runs.
  local protect=()
  [[ -d "$SOURCE/tests" ]] || protect=(--filter='protect /tests/')
  rsync -a --delete "${protect[@]}" \
    --exclude=/.git --exclude=/.venv --exclude=/.build --exclude=/.lab --exclude=/tests/output \
    --exclude=/.ansible --exclude=.tox --exclude=.cache --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=.mypy_cache --exclude='*.py[co]' \
    "$SOURCE/" "$WORK/"
  # Without tests/ in the source, rsync would try to delete the copy's tests/ (it holds the kept
  # output) and complain; it is protected above and emptied of all else here.
  if [[ ! -d "$SOURCE/tests" && -d "$WORK/tests" ]]; then
    find "$WORK/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
  fi
  if [[ ! -d "$WORK/.git" ]]; then
    git -C "$WORK" init -q
  fi
  # ansible-test lists the content with `git ls-files --cached --others --exclude-standard`:
  # keep its own output and caches out of that list even if .gitignore does not name them.
  printf '%s\n' /tests/output/ __pycache__/ '*.py[co]' .pytest_cache/ >"$WORK/.git/info/exclude"
  rm -f "$WORK/.git/index"   # nothing is staged: every file is listed as untracked, none as deleted
  # Results of an earlier run go; .tmp/ (the delegation virtualenv) stays for speed.
  if [[ -d "$WORK/tests/output" ]]; then
    find "$WORK/tests/output" -mindepth 1 -maxdepth 1 ! -name .tmp -exec rm -rf {} +
  fi
}

# Collections named under `dependencies:` in galaxy.yml are taken from the `ansible` package in the
# virtualenv (Ansible Galaxy is out of reach) and linked beside the copy, where ansible-test's
# ANSIBLE_COLLECTIONS_PATH finds them.
link_dependencies() {
  # Links left by an earlier run go first, so a dependency dropped from galaxy.yml is not seen.
  find "$COLLECTIONS" -mindepth 2 -maxdepth 2 -type l -delete
  find "$COLLECTIONS" -mindepth 1 -maxdepth 1 -type d -empty -delete
  [[ -f "$WORK/galaxy.yml" ]] || return 0
  local installed dep
  installed=$("$VENV/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(list(ansible_collections.__path__)[0]) + "/ansible_collections")' 2>/dev/null) || return 0
  while read -r dep; do
    [[ -n "$dep" ]] || continue
    local ns=${dep%%.*} name=${dep#*.}
    [[ "$ns/$name" == "$NAMESPACE/$NAME" ]] && continue
    if [[ -d "$installed/$ns/$name" ]]; then
      mkdir -p "$COLLECTIONS/$ns"
      ln -sfn "$installed/$ns/$name" "$COLLECTIONS/$ns/$name"
    else
      log "warning: dependency $dep is not in $installed"
    fi
  done < <("$VENV/bin/python" - "$WORK/galaxy.yml" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    deps = (yaml.safe_load(f) or {}).get('dependencies') or {}
print('\n'.join(deps))
PY
)
}

main() {
  command -v rsync >/dev/null || die "rsync is missing: run scripts/bootstrap.sh packages"
  command -v git >/dev/null || die "git is missing: run scripts/bootstrap.sh packages"
  mkdir -p "$COLLECTIONS"
  exec 9>"$COLLECTIONS/../.lock"
  flock 9   # one run at a time shares the copy
  wait_for_ansible_test
  install_get_pip_stand_in
  sync_copy
  link_dependencies
  # pip in ansible-test's virtualenvs installs from PyPI and must trust the system CA bundle.
  if [[ -z "${PIP_CERT:-}" && -f "$CA_BUNDLE" ]]; then
    export PIP_CERT="$CA_BUNDLE"
  fi
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # ansible-test looks for python<version> on PATH. A pyenv interpreter is put first: pyenv's shim for it answers
  # "command not found" unless that version is selected (pyenv global).
  local pyenv_python
  for pyenv_python in "$HOME"/.pyenv/versions/"$PYTHON_VERSION".*/bin/python"$PYTHON_VERSION"; do
    [[ -x "$pyenv_python" ]] && PATH="${pyenv_python%/*}:$PATH"
  done
  log "ansible-test sanity --venv --python $PYTHON_VERSION $*"
  cd "$WORK"
  local status color=()
  [[ -t 1 ]] && color=(--color yes)   # the filter below is a pipe, which ansible-test reads as "no colour"
  # pip's complaints that this host's local extra indexes lack a project are noise: drop them.
  set +e
  "$ANSIBLE_TEST" sanity --venv --python "$PYTHON_VERSION" "${color[@]}" "$@" 2>&1 \
    | { grep --line-buffered -v 'is ignored: it is neither a file nor a directory' || true; }
  status=${PIPESTATUS[0]}
  set -e
  if ((status)); then
    log "sanity FAILED (exit $status); results in $WORK/tests/output/"
  else
    log "sanity passed"
  fi
  return "$status"
}

main "$@"
