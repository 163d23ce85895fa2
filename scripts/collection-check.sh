#!/usr/bin/env bash
# Check chronos.pgbackrest as people install it, from the tarball rather than from this checkout:
#
#   build     ansible-galaxy collection build
#   contents  the tarball holds the collection and nothing of the development tree
#   install   into an empty collections path, offline; the dependencies galaxy.yml declares must be
#             satisfied by the collections of the `ansible` package in the virtualenv
#   dependencies  every collection the roles, playbooks and plugins call is declared in galaxy.yml
#   docs      ansible-doc, from that install, for every module and every role entry point
#   playbooks ansible-playbook --syntax-check of every playbook by name (chronos.pgbackrest.backup ...)
#   ee        ansible-builder create for an execution environment holding the tarball, then the
#             requirements its build would compute (ansible-builder introspect over the installed
#             collection and its dependencies): the collection contributes exactly
#             meta/ee-requirements.txt and meta/ee-bindep.txt, and nothing is test tooling
#   changelog antsibull-changelog lint; CHANGELOG.md is what changelogs/changelog.yaml generates
#   doclint   antsibull-docs lint-collection-docs --plugin-docs
#   sanity    ansible-test sanity on the installed collection (scripts/sanity.sh with SANITY_SOURCE), on Python
#             3.13 (INSTALLED_SANITY_PYTHON): what users install passes it too, not only this checkout (3.11)
#
# Every check runs even when an earlier one fails (except after a failed build or install); the
# summary names the failed ones. Work files stay in .build/collection-check/ for inspection.
#
# Usage: scripts/collection-check.sh
# Environment:
#   COLLECTION_VENV  virtualenv with ansible-core, ansible, ansible-builder, antsibull-changelog and
#                    antsibull-docs (default: $ROOT/.venv, filled by scripts/bootstrap.sh venv)
# Exit status: 0 when every check passed, 1 when one failed, 2 when the tools are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${COLLECTION_VENV:-$ROOT/.venv}
WORK="$ROOT/.build/collection-check"
NAMESPACE=chronos
NAME=pgbackrest
FQCN="$NAMESPACE.$NAME"
INSTALL="$WORK/collections"                      # the empty collections path the tarball goes into
INSTALLED="$INSTALL/ansible_collections/$NAMESPACE/$NAME"
INSTALLED_SANITY_PYTHON=${INSTALLED_SANITY_PYTHON:-3.13}

# What the tarball may hold: the collection's own directories and files, by path prefix.
ALLOWED_PATHS=(
  MANIFEST.json FILES.json README.md CHANGELOG.md COPYING
  changelogs/ docs/ meta/ plugins/ roles/ playbooks/ templates/prometheus/ templates/grafana/ inventories/example/
)
# What it must hold: the licence, the release notes and the metadata ansible-builder reads.
REQUIRED_FILES=(
  COPYING README.md CHANGELOG.md changelogs/changelog.yaml meta/runtime.yml
  meta/execution-environment.yml meta/ee-requirements.txt meta/ee-bindep.txt
)
# Never anywhere in it, even under an allowed directory.
DENIED_PATTERNS=('*/__pycache__/*' '*.pyc' '*.candidate' '*/.plugin-cache.yaml' '*/conftest.py' '*/tests/unit/*')
# Python packages that are test, lint or lab tooling: none may reach an execution environment.
TEST_TOOLING='^(pytest([-_].*)?|molecule([-_].*)?|moto|testinfra|ansible-lint|ansible-builder|antsibull([-_].*)?|tox|nox|coverage|mock|matplotlib|yamllint|flake8|pylint|pycodestyle|black|mypy)$'

log() { printf '==> %s\n' "$*" >&2; }
say() { printf '    %s\n' "$*" >&2; }
die() { printf 'collection-check.sh: %s\n' "$*" >&2; exit 2; }

# --- the tools --------------------------------------------------------------------------------------
missing_tools() {
  local tool
  for tool in python ansible-galaxy ansible-doc ansible-playbook ansible-builder antsibull-changelog antsibull-docs; do
    [[ -x "$VENV/bin/$tool" ]] || printf '%s ' "$tool"
  done
}

require_tools() {
  local missing
  missing=$(missing_tools)
  if [[ -n "$missing" && -z "${COLLECTION_VENV:-}" ]]; then
    # A virtualenv made from an older requirements-dev.txt lacks them; bootstrap reinstalls it.
    log "missing in $VENV: ${missing}- running scripts/bootstrap.sh venv"
    "$ROOT/scripts/bootstrap.sh" venv
    missing=$(missing_tools)
  fi
  [[ -z "$missing" ]] || die "missing in $VENV: ${missing}(run scripts/bootstrap.sh venv)"
  export PATH="$VENV/bin:$PATH"
  # Ansible must see neither this checkout (ansible.cfg points collections_path at .build/collections)
  # nor the caller's configuration: an empty configuration file, and the fresh install first.
  printf '[defaults]\n' >"$WORK/ansible.cfg"
  export ANSIBLE_CONFIG="$WORK/ansible.cfg"
  unset ANSIBLE_COLLECTIONS_PATHS ANSIBLE_ROLES_PATH
  SITE_COLLECTIONS=$(python -c 'import ansible_collections, os; print(os.path.dirname(list(ansible_collections.__path__)[0]))')
  export ANSIBLE_COLLECTIONS_PATH="$INSTALL:$SITE_COLLECTIONS"
}

# --- build, contents, install -------------------------------------------------------------------
build() {
  log "ansible-galaxy collection build"
  ansible-galaxy collection build --output-path "$WORK/dist" "$ROOT" >/dev/null
  ls "$WORK/dist/$NAMESPACE-$NAME-"*.tar.gz >&2
}

contents() {
  log "tarball contents: only the collection"
  tar -tzf "$TARBALL" >"$WORK/tarball-contents"
  python - "$WORK/tarball-contents" "${ALLOWED_PATHS[*]}" "${REQUIRED_FILES[*]}" "${DENIED_PATTERNS[*]}" <<'PY'
import fnmatch, sys
with open(sys.argv[1]) as f:
    entries = [line.rstrip('\n') for line in f if line.strip()]
allowed, required, denied = (arg.split() for arg in sys.argv[2:])
files = [e for e in entries if not e.endswith('/')]
def allowed_path(path):
    return any(path == a or (a.endswith('/') and path.startswith(a)) for a in allowed)
offending = sorted(f for f in files if not allowed_path(f) or any(fnmatch.fnmatch('/' + f, d) for d in denied))
missing = sorted(set(required) - set(files))
groups = {}   # by directory, up to two levels deep, so a whole tree left in is one line
for f in offending:
    groups.setdefault('/'.join(f.split('/')[:2]) + '/' if f.count('/') > 1 else f, []).append(f)
for key, members in sorted(groups.items()):
    detail = ' (%d files)' % len(members) if len(members) > 1 else ''
    print('    not collection content: %s%s' % (key if len(members) > 1 else members[0], detail), file=sys.stderr)
for f in missing:
    print('    missing: %s' % f, file=sys.stderr)
if offending:
    print('    leave these out with build_ignore in galaxy.yml, or add the path to ALLOWED_PATHS in '
          'scripts/collection-check.sh if it is content users need', file=sys.stderr)
print('    %d files checked' % len(files), file=sys.stderr)
sys.exit(1 if offending or missing else 0)
PY
}

install_tarball() {
  log "ansible-galaxy collection install --offline into an empty collections path"
  # Offline, the dependencies resolve against the collections already installed (the ansible package):
  # a range in galaxy.yml that it does not satisfy fails here.
  ansible-galaxy collection install --offline -p "$INSTALL" "$TARBALL"
  [[ -f "$INSTALLED/MANIFEST.json" ]] || { say "not installed at $INSTALLED"; return 1; }
}

# Every collection the roles, playbooks and plugins call must be a declared dependency, or an execution
# environment built from the tarball lacks it. Looks for FQCNs used as task keywords (modules, actions),
# role names, connection plugins and module_utils imports, of collections that are installed here.
dependencies() {
  log "every collection the content uses is declared in galaxy.yml"
  python - "$INSTALLED" "$FQCN" "$SITE_COLLECTIONS/ansible_collections" <<'PY'
import json, os, re, sys
root, own, installed = sys.argv[1:]
with open(os.path.join(root, 'MANIFEST.json')) as f:
    declared = set(json.load(f)['collection_info'].get('dependencies') or {})
known = {'%s.%s' % (ns, name) for ns in os.listdir(installed) if os.path.isdir(os.path.join(installed, ns))
         for name in os.listdir(os.path.join(installed, ns))}
fqcn = r'([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+'
patterns = {'.yml': [re.compile(r'^\s*(?:- )?' + fqcn + r':'),                       # module or action
                     re.compile(r'^\s*(?:- )?(?:name|role|ansible_connection):\s*' + fqcn + r'\s*$')],
            '.py': [re.compile(r'ansible_collections\.([a-z0-9_]+\.[a-z0-9_]+)\.')]}
patterns['.yaml'] = patterns['.yml']
used = {}
for top in ('roles', 'playbooks', 'plugins'):
    for dirpath, _, filenames in os.walk(os.path.join(root, top)):
        for filename in filenames:
            for pattern in patterns.get(os.path.splitext(filename)[1], []):
                path = os.path.join(dirpath, filename)
                with open(path, errors='replace') as f:
                    for number, line in enumerate(f, 1):
                        match = pattern.search(line)
                        if match and match.group(1) in known:
                            used.setdefault(match.group(1), '%s:%d' % (os.path.relpath(path, root), number))
undeclared = sorted(set(used) - declared - {own, 'ansible.builtin'})
for collection in undeclared:
    print('    FAIL %s is used (%s) but not declared under dependencies in galaxy.yml' % (collection, used[collection]),
          file=sys.stderr)
for collection in sorted(declared - set(used)):
    print('    note: %s is declared but no FQCN of it was found' % collection, file=sys.stderr)
print('    used: %s' % ', '.join(sorted(used)), file=sys.stderr)
sys.exit(1 if undeclared else 0)
PY
}

# --- ansible-doc from the install ----------------------------------------------------------------
# Modules and role entry points are read from the checkout, so one the tarball lost is reported.
doc_targets() {
  local module roles_spec
  for module in "$ROOT"/plugins/modules/*.py; do
    [[ -f "$module" && "$(basename "$module")" != __init__.py ]] || continue
    printf 'module %s.%s\n' "$FQCN" "$(basename "$module" .py)"
  done
  for role in "$ROOT"/roles/*/; do
    [[ -d "$role" ]] || continue
    role=$(basename "$role")
    roles_spec=$(echo "$ROOT/roles/$role/meta/argument_specs.y"*ml)
    if [[ ! -f "$roles_spec" ]]; then
      printf 'role %s.%s -\n' "$FQCN" "$role"
      continue
    fi
    python - "$roles_spec" <<'PY' | sed "s/^/role $FQCN.$role /"
import sys, yaml
with open(sys.argv[1]) as f:
    print('\n'.join((yaml.safe_load(f) or {}).get('argument_specs') or {}))
PY
  done
}

docs() {
  log "ansible-doc for every module and role entry point, from the installed collection"
  local kind name entry failed=0 json="$WORK/ansible-doc.json" err="$WORK/ansible-doc.stderr"
  doc_targets >"$WORK/doc-targets"
  while read -r kind name entry; do
    if [[ "$kind" == role && "$entry" == - ]]; then
      say "FAIL role $name: no meta/argument_specs.yml, so ansible-doc documents no entry point"
      failed=1
      continue
    fi
    local args=(-t "$kind" "$name") label="$kind $name"
    if [[ "$kind" == role ]]; then
      args=(-t role -e "$entry" "$name")
      label="role $name, entry point $entry"
    fi
    # The JSON says where the documentation came from; the text rendering catches what ansible-doc cannot show.
    if ansible-doc --json "${args[@]}" >"$json" 2>"$err" \
       && python - "$json" "$kind" "$name" "$entry" "$INSTALL/" 2>>"$err" <<'PY' \
       && ansible-doc "${args[@]}" >/dev/null 2>>"$err" && ! grep -qE '\[(WARNING|ERROR|DEPRECATION WARNING)\]' "$err"
import json, sys
path, kind, name, entry, install = sys.argv[1:]
with open(path) as f:
    doc = json.load(f).get(name)
if not doc:
    sys.exit('%s not found' % name)
if kind == 'module':
    source, short = doc['doc'].get('filename', ''), doc['doc'].get('short_description')
else:
    entry_points = doc.get('entry_points') or {}
    if entry not in entry_points:
        sys.exit('entry point %s not found' % entry)
    source, short = doc.get('path', ''), entry_points[entry].get('short_description')
if not source.startswith(install):
    sys.exit('documentation read from %s, not from the installed collection' % source)
if not short:
    sys.exit('no short_description')
PY
    then
      say "ok   $label"
    else
      say "FAIL $label"
      sed 's/^/         /' "$err" >&2
      failed=1
    fi
  done <"$WORK/doc-targets"
  return "$failed"
}

# The collection's playbooks run by name from the install (ansible-playbook chronos.pgbackrest.backup).
playbooks() {
  log "ansible-playbook --syntax-check for every playbook, by name, from the installed collection"
  local playbook name failed=0
  for playbook in "$ROOT"/playbooks/*.yml; do
    [[ -f "$playbook" ]] || continue
    name="$FQCN.$(basename "$playbook" .yml)"
    if ansible-playbook -i localhost, --syntax-check "$name" >"$WORK/playbook.log" 2>&1 \
       && grep -q "^playbook: $INSTALLED/" "$WORK/playbook.log"; then
      say "ok   $name"
    else
      say "FAIL $name"
      sed 's/^/         /' "$WORK/playbook.log" >&2
      failed=1
    fi
  done
  return "$failed"
}

# --- execution environment ---------------------------------------------------------------------
# The collection and, transitively, the dependencies its MANIFEST.json names, as the image's galaxy
# stage would install them (taken from the ansible package: Galaxy is out of reach).
assemble_ee_collections() {
  python - "$INSTALLED" "$SITE_COLLECTIONS/ansible_collections" "$1/ansible_collections" <<'PY'
import json, os, sys
own, installed, dest = sys.argv[1:]
pending, seen = [own], set()
while pending:
    path = pending.pop()
    with open(os.path.join(path, 'MANIFEST.json')) as f:
        info = json.load(f)['collection_info']
    key = (info['namespace'], info['name'])
    if key in seen:
        continue
    seen.add(key)
    os.makedirs(os.path.join(dest, key[0]), exist_ok=True)
    os.symlink(os.path.abspath(path), os.path.join(dest, *key))
    print('    %s.%s %s' % (key[0], key[1], info['version']), file=sys.stderr)
    pending += [os.path.join(installed, *dep.split('.', 1)) for dep in info.get('dependencies') or {}]
PY
}

execution_environment() {
  log "ansible-builder create, then the requirements the image build would compute"
  local ee="$WORK/ee" tarball_name
  tarball_name=$(basename "$TARBALL")
  mkdir -p "$ee"
  cp "$TARBALL" "$ee/"
  # An execution environment as a platform team would define it. The base image is never pulled:
  # `create` only writes the build context.
  cat >"$ee/execution-environment.yml" <<EOF
---
version: 3
images:
  base_image:
    name: quay.io/fedora/python-311:latest
dependencies:
  ansible_core:
    package_pip: ansible-core>=2.19.0,<2.20.0
  ansible_runner:
    package_pip: ansible-runner
  galaxy:
    collections:
      - name: collections/$tarball_name
        type: file
  exclude:
    python:
      # community.postgresql 4.2.0 lists its unit-test requirements in its requirements.txt;
      # ansible-builder drops pytest by itself, not pytest-mock.
      - pytest-mock
additional_build_files:
  - src: $tarball_name
    dest: collections
EOF
  (cd "$ee" && ansible-builder create -f execution-environment.yml -c context >/dev/null)
  grep -q "collections/$tarball_name" "$ee/context/_build/requirements.yml" \
    || { say "the build context's requirements.yml does not name $tarball_name"; return 1; }
  mkdir -p "$ee/collections"
  assemble_ee_collections "$ee/collections"
  local exclude=()
  [[ -f "$ee/context/_build/exclude-requirements.txt" ]] \
    && exclude=(--exclude-pip-reqs "$ee/context/_build/exclude-requirements.txt")
  [[ -f "$ee/context/_build/exclude-bindep-requirements.txt" ]] \
    && exclude+=(--exclude-bindep-reqs "$ee/context/_build/exclude-bindep-requirements.txt")
  ansible-builder introspect "${exclude[@]}" --write-pip "$ee/requirements.txt" \
    --write-bindep "$ee/bindep.txt" "$ee/collections" >"$ee/introspect.log"
  touch "$ee/requirements.txt" "$ee/bindep.txt"   # not written when empty
  say "python requirements of the image:"
  sed 's/^/      /' "$ee/requirements.txt" >&2
  say "system requirements of the image:"
  sed 's/^/      /' "$ee/bindep.txt" >&2
  python - "$FQCN" "$ROOT/meta/ee-requirements.txt" "$ROOT/meta/ee-bindep.txt" \
    "$ee/requirements.txt" "$ee/bindep.txt" "$TEST_TOOLING" <<'PY'
import re, sys
from packaging.requirements import Requirement
fqcn, own_pip, own_bindep, pip, bindep, tooling = sys.argv[1:]
def entries(path):
    with open(path) as f:
        return [l.split('#', 1)[0].strip() for l in f if l.split('#', 1)[0].strip()]
def generated(path):
    with open(path) as f:
        return [tuple(s.strip() for s in l.split('# from collection ', 1)) for l in f if l.strip()]
errors = []
pip_lines, bindep_lines = generated(pip), generated(bindep)
for own, lines, label in ((own_pip, pip_lines, 'python'), (own_bindep, bindep_lines, 'system')):
    contributed = sorted(line for line, *source in lines if source == [fqcn])
    if contributed != sorted(entries(own)):
        errors.append('%s requirements from %s are %s, but %s lists %s' % (label, fqcn, contributed, own, sorted(entries(own))))
for line in entries(own_pip):
    req = Requirement(line)
    if re.match(tooling, req.name.lower().replace('_', '-')):
        errors.append('%s lists test tooling: %s' % (own_pip, line))
    if any(s.operator in ('==', '===', '<', '<=', '~=') for s in req.specifier):
        errors.append('%s pins or caps %s: execution environments merge requirements, use >= only' % (own_pip, line))
for line, *source in pip_lines:
    name = re.split(r'[\s\[<>=!~;]', line, 1)[0].lower().replace('_', '-')
    if re.match(tooling, name):
        errors.append('test tooling in the image: %s (from %s)' % (line, source[0] if source else 'the definition'))
for e in errors:
    print('    FAIL ' + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# --- antsibull ----------------------------------------------------------------------------------
changelog() {
  log "antsibull-changelog lint; CHANGELOG.md generated from changelogs/changelog.yaml"
  (cd "$ROOT" && antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml)
  (cd "$ROOT" && antsibull-changelog generate --output "$WORK/CHANGELOG.md" --output-format md)
  if ! diff -u "$ROOT/CHANGELOG.md" "$WORK/CHANGELOG.md" >"$WORK/CHANGELOG.diff"; then
    say "FAIL CHANGELOG.md differs from what changelogs/changelog.yaml generates ($WORK/CHANGELOG.diff):"
    say "     run antsibull-changelog generate (or release) and commit CHANGELOG.md"
    return 1
  fi
}

sanity_installed() {
  # On Python 3.13, the Python of Debian 13 managed hosts; `make sanity` tests the checkout on 3.11.
  log "ansible-test sanity on the installed collection, Python $INSTALLED_SANITY_PYTHON"
  SANITY_SOURCE="$INSTALLED" SANITY_VENV="$VENV" SANITY_PYTHON="$INSTALLED_SANITY_PYTHON" "$ROOT/scripts/sanity.sh"
}

doclint() {
  log "antsibull-docs lint-collection-docs --plugin-docs"
  antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent "$ROOT"
}

# --- main ---------------------------------------------------------------------------------------
FAILED=()
# Runs one check in a subshell with errexit in force and records it when it fails. It is called
# as a plain command only: from an `if`, `&&` or `||`, bash would run the check without errexit.
check() {
  local status
  set +e
  (set -e; "$@")
  status=$?
  set -e
  ((status == 0)) || FAILED+=("$1")
}

failed() { [[ " ${FAILED[*]} " == *" $1 "* ]]; }

main() {
  local started=$SECONDS
  exec >&2   # the tools' output and this script's messages, in the order they happen
  rm -rf "$WORK"
  mkdir -p "$WORK" "$INSTALL"
  require_tools
  cd "$WORK"   # away from the checkout's ansible.cfg
  check build
  if ! failed build; then
    TARBALL=$(echo "$WORK/dist/$NAMESPACE-$NAME-"*.tar.gz)
    check contents
    check install_tarball
    if ! failed install_tarball; then
      check dependencies
      check docs
      check playbooks
      check execution_environment
      check sanity_installed
    fi
  fi
  check changelog
  check doclint
  if ((${#FAILED[@]})); then
    log "collection check FAILED: ${FAILED[*]} ($((SECONDS - started)) s; work files in $WORK)"
    return 1
  fi
  log "collection check passed ($((SECONDS - started)) s)"
}

main "$@"
