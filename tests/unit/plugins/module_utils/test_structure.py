# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of the code, read from its source: module_utils imports no circle (imports inside functions counted),
and nothing outside the two drivers asks which kind of target it holds."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ast
import os

import pytest

from ansible_collections.chronos.pgbackrest.tests.unit.harness import REPO

PACKAGE = 'ansible_collections.chronos.pgbackrest.plugins.module_utils'
UTILS = os.path.join(REPO, 'plugins', 'module_utils')
DRIVERS = {'_host', '_container', '_drivers'}
TARGET_CLASSES = {'HostTarget', 'ContainerTarget', 'HostScratch', 'ContainerScratch', 'DirectoryPlace',
                  'VolumeRootPlace', 'BindRootPlace'}


def parsed(path):
    with open(path) as handle:
        return ast.parse(handle.read(), path)


def imports_of(tree):
    """The sibling module_utils a module imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PACKAGE + '.'):
            found.add(node.module.rsplit('.', 1)[1])
        elif isinstance(node, ast.Import):
            found.update(alias.name.rsplit('.', 1)[1] for alias in node.names if alias.name.startswith(PACKAGE + '.'))
    return found


def graph():
    return dict((name[:-3], imports_of(parsed(os.path.join(UTILS, name))))
                for name in sorted(os.listdir(UTILS)) if name.endswith('.py') and name != '__init__.py')


def circle(edges):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = 'open'
        for child in sorted(edges.get(node, ())):
            if state.get(child) == 'open':
                return path[path.index(child):] + [child] if child in path else path + [child]
            if child not in state:
                found = visit(child, path + [child])
                if found:
                    return found
        state[node] = 'done'
        return None
    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_module_utils_import_no_circle():
    edges = graph()
    assert '_errors' in edges and '_files' in edges
    assert circle(edges) is None


def test_the_circle_finder_finds_one():
    assert circle({'_a': {'_b'}, '_b': {'_c'}, '_c': {'_a'}}) == ['_a', '_b', '_c', '_a']
    assert circle({'_a': {'_b'}, '_b': set()}) is None


def kind_questions(tree):
    """Lines asking which kind a target is: x.kind compared, isinstance with a driver's class, getattr or hasattr."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left] + list(node.comparators)
            if any(isinstance(side, ast.Attribute) and side.attr == 'kind' for side in sides):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == 'isinstance' and len(node.args) == 2:
                names = {getattr(item, 'id', getattr(item, 'attr', None))
                         for item in getattr(node.args[1], 'elts', [node.args[1]])}
                if names & TARGET_CLASSES:
                    lines.append(node.lineno)
            if node.func.id in ('getattr', 'hasattr') and node.args and 'target' in ast.dump(node.args[0]):
                lines.append(node.lineno)
    return lines


def production_files():
    for folder in ('module_utils', 'modules', 'action', 'filter'):
        directory = os.path.join(REPO, 'plugins', folder)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if name.endswith('.py') and name[:-3] not in DRIVERS:
                yield os.path.join(folder, name)


@pytest.mark.parametrize('path', list(production_files()))
def test_no_question_of_the_targets_kind_outside_the_drivers(path):
    assert kind_questions(parsed(os.path.join(REPO, 'plugins', path))) == []


def test_the_kind_finder_finds_them():
    tree = ast.parse("if target.kind == 'container': pass\nisinstance(t, HostTarget)\ngetattr(target, 'pgdata')\n")
    assert kind_questions(tree) == [1, 2, 3]
