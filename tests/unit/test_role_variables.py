# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No role reads a variable that it does not declare.

A role may read what its argument specs declare (the role's interface), what it sets
itself (defaults, vars, set_fact, register, loop variables, task vars), the run's plan
(plan_hosts) and Ansible's own variables. Anything else is data handed over in secret
between plays, which a newcomer cannot find and a user of the role cannot set: the
test reads every Jinja expression of the role's task, default and var files and names
each such read.
"""

from __future__ import annotations

import pathlib

import jinja2
import jinja2.meta
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "tasks").is_dir())

# Keys whose values are bare Jinja expressions.
BARE_KEYS = {"when", "that", "until", "changed_when", "failed_when"}
# Ansible's own variables and Jinja's globals that roles read.
ANSIBLE = {
    "inventory_hostname", "hostvars", "groups", "group_names", "ansible_play_hosts", "ansible_play_hosts_all",
    "ansible_play_batch", "ansible_check_mode", "ansible_diff_mode", "ansible_facts", "role_path", "playbook_dir",
    "omit", "item", "ansible_loop", "lookup", "query", "q", "now", "range", "dict", "lipsum", "undef",
    "ansible_failed_result", "ansible_failed_task",  # set in a rescue section
}
# The run's plan, built by the plan role (a meta dependency of every role that reads it).
PLAN = {"plan_hosts"}
# Task keys that define variables for the tasks that follow or for the task itself.
LOOP_CONTROL_KEYS = ("loop_var", "index_var")


def expressions(node, key=None):
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from expressions(value, child_key)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value, key)
    elif isinstance(node, str):
        if key in BARE_KEYS:
            yield "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield node


class _Known(dict):
    """Every filter and test name is known: Ansible's and the collection's are not Jinja's."""

    def __contains__(self, name):
        return True

    def __getitem__(self, name):
        return lambda *args, **kwargs: None

    def get(self, name, default=None):
        return self[name]


ENVIRONMENT = jinja2.Environment()
ENVIRONMENT.filters = _Known()
ENVIRONMENT.tests = _Known()


def reads(text):
    return jinja2.meta.find_undeclared_variables(ENVIRONMENT.parse(text))


def defined_in_tasks(node):
    """Names a task list sets: set_fact keys, registers, loop variables, task and include vars."""
    names = set()
    if isinstance(node, list):
        for item in node:
            names |= defined_in_tasks(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.set_fact", "set_fact") and isinstance(value, dict):
                names |= {name for name in value if name != "cacheable"}
            elif key == "register" and isinstance(value, str):
                names.add(value)
            elif key == "vars" and isinstance(value, dict):
                names |= set(value)
            elif key == "loop_control" and isinstance(value, dict):
                names |= {value[name] for name in LOOP_CONTROL_KEYS if name in value}
            elif key in ("block", "rescue", "always"):
                names |= defined_in_tasks(value)
    return names


def yaml_files(role, *folders):
    return [path for folder in folders for path in sorted((ROOT / "roles" / role / folder).glob("*.yml"))]


def declared(role):
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    names = {name for entry in specs.values() for name in entry.get("options", {})}
    for path in yaml_files(role, "defaults", "vars"):
        names |= set(yaml.safe_load(path.read_text()) or {})
    for path in yaml_files(role, "tasks"):
        names |= defined_in_tasks(yaml.safe_load(path.read_text()))
    return names


def undeclared_reads(role):
    allowed = declared(role) | ANSIBLE | PLAN
    found = {}
    for path in yaml_files(role, "tasks", "defaults", "vars"):
        for text in expressions(yaml.safe_load(path.read_text())):
            for name in reads(text) - allowed:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "roles" / role / "templates").glob("*")):
        for name in reads(path.read_text()) - allowed:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return {name: sorted(paths) for name, paths in sorted(found.items())}


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_a_role_reads_is_declared(role):
    assert undeclared_reads(role) == {}, (
        f"role {role} reads variables that neither its meta/argument_specs.yml nor the plan declares "
        "(declare them as options, or take them from plan_hosts)")


def test_the_scan_finds_an_undeclared_read(tmp_path, monkeypatch):
    # The test above must be able to fail: a role that reads a variable it never declares.
    role = tmp_path / "roles" / "probe"
    for folder in ("tasks", "meta", "defaults"):
        (role / folder).mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text("argument_specs: {main: {options: {probe_given: {type: str}}}}\n")
    (role / "defaults" / "main.yml").write_text("probe_default: 1\n")
    (role / "tasks" / "main.yml").write_text(
        "- name: Use\n  ansible.builtin.debug:\n    msg: '{{ probe_given ~ probe_default ~ probe_set ~ item ~ secret_from_elsewhere }}'\n"
        "  loop: [1]\n  when: another_secret is defined\n"
        "- name: Set\n  ansible.builtin.set_fact:\n    probe_set: 2\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert undeclared_reads("probe") == {"another_secret": ["roles/probe/tasks/main.yml"],
                                         "secret_from_elsewhere": ["roles/probe/tasks/main.yml"]}
