# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' contract: each entry point of meta/argument_specs.yml lists exactly the role variables its tasks use -
read from the task files it runs (imports and includes followed), the templates they render and the role's
internal variables (vars/main.yml) they reach - and every option has a default in defaults/main.yml that matches."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

import pytest
import yaml

from ansible_collections.chronos.pgbackrest.tests.unit.harness import REPO

ROLES = os.path.join(REPO, 'roles')
INCLUDE = re.compile(r'(?:import_tasks|include_tasks):\s*(\S+\.yml)')
TEMPLATE = re.compile(r"""(?:template',\s*'|src:\s*)([\w.-]+\.j2)""")


def load(role, *parts):
    with open(os.path.join(ROLES, role, *parts)) as handle:
        return handle.read()


def internal_variables(role):
    """{__name: its text} from vars/main.yml."""
    path = os.path.join(ROLES, role, 'vars', 'main.yml')
    if not os.path.exists(path):
        return {}
    return dict((name, yaml.safe_dump(value)) for name, value in (yaml.safe_load(load(role, 'vars', 'main.yml')) or {}).items())


def used_variables(role, entry_point):
    """The role variables (prefix role_) the entry point's tasks reach."""
    prefix = role + '_'
    internal = internal_variables(role)
    texts, seen = [], set()
    todo = ['%s.yml' % entry_point]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = load(role, 'tasks', name)
        texts.append(text)
        todo.extend(INCLUDE.findall(text))
        texts.extend(load(role, 'templates', template) for template in TEMPLATE.findall(text))
    used, reached = set(), set()
    while texts:
        text = texts.pop()
        for name in re.findall(r'\b(__%s\w+)' % re.escape(prefix), text):
            if name in internal and name not in reached:
                reached.add(name)
                texts.append(internal[name])
                texts.extend(load(role, 'templates', template) for template in TEMPLATE.findall(internal[name]))
        used.update(re.findall(r'(?<![\w.])(%s\w+)' % re.escape(prefix), text))
    return used


def entry_points(role):
    return sorted(yaml.safe_load(load(role, 'meta', 'argument_specs.yml'))['argument_specs'].items())


CASES = [(role, name) for role in sorted(os.listdir(ROLES)) for name, dummy in entry_points(role)]


@pytest.mark.parametrize('role, entry_point', CASES)
def test_an_entry_point_lists_exactly_the_variables_its_tasks_use(role, entry_point):
    options = set(dict(entry_points(role))[entry_point].get('options') or {})
    # The role's variables: its defaults and its options (the secrets have no default); not what tasks register.
    known = set(yaml.safe_load(load(role, 'defaults', 'main.yml')) or {})
    for dummy, spec in entry_points(role):
        known.update(spec.get('options') or {})
    used = used_variables(role, entry_point) & known
    assert sorted(options - used) == [], 'listed, not used by %s' % entry_point
    assert sorted(used - options) == [], 'used by %s, not listed' % entry_point


@pytest.mark.parametrize('role, entry_point', CASES)
def test_option_defaults_are_the_roles_defaults(role, entry_point):
    defaults = yaml.safe_load(load(role, 'defaults', 'main.yml')) or {}
    options = dict(entry_points(role))[entry_point].get('options') or {}
    for name, spec in options.items():
        if 'default' in spec and '{{' not in str(defaults.get(name)):
            assert spec.get('default') == defaults.get(name), name
