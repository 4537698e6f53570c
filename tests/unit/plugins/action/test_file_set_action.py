# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_set's quick look: the sh it runs, read on the controller, and the action in real
ansible-playbook runs on localhost - the look must never vouch for what the module would change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.file_set import probe_script, probe_unchanged
from ansible_collections.aicluster.lab.plugins.modules import file_set

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="file_set makes files owned by root: the tests run as root")

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))


def entries(tmp_path):
    return {"directories": [str(tmp_path / "etc" / "k3s")],
            "files": [{"path": str(tmp_path / "etc" / "k3s" / "config.yaml"), "content": "token: s3cr'et $x\n",
                       "mode": "0600"},
                      {"path": str(tmp_path / "unit dir" / "k3s.service"), "content": "[Unit]\nDescription=é\n"}],
            "absent": [str(tmp_path / "old.yaml")]}


def looks_unchanged(tmp_path, wanted):
    script = probe_script(wanted["files"], wanted["directories"], wanted["absent"])
    output = subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True).stdout
    return probe_unchanged(output, wanted["files"], wanted["directories"], wanted["absent"])


def test_the_look_vouches_only_for_what_the_module_leaves_alone(run_module, tmp_path):
    wanted = entries(tmp_path)
    assert not looks_unchanged(tmp_path, wanted)
    run_module(file_set, wanted)
    assert looks_unchanged(tmp_path, wanted)
    config = tmp_path / "etc" / "k3s" / "config.yaml"
    unit = tmp_path / "unit dir" / "k3s.service"
    # Each difference the module would act on makes the look step aside, and the module agrees.
    for spoil, undo in [
            (lambda: config.chmod(0o644), lambda: config.chmod(0o600)),
            (lambda: os.chown(unit, 1000, 0), lambda: os.chown(unit, 0, 0)),
            (lambda: unit.write_text("[Unit]\n"), lambda: unit.write_text("[Unit]\nDescription=é\n")),
            (lambda: (tmp_path / "etc" / "k3s").chmod(0o700), lambda: (tmp_path / "etc" / "k3s").chmod(0o755)),
            (lambda: (tmp_path / "old.yaml").write_text(""), (tmp_path / "old.yaml").unlink),
            (lambda: (tmp_path / "old.yaml").symlink_to("/nowhere"), (tmp_path / "old.yaml").unlink)]:
        spoil()
        assert not looks_unchanged(tmp_path, wanted)
        assert run_module(file_set, wanted, check_mode=True)["changed"]
        undo()
        assert looks_unchanged(tmp_path, wanted)
    # A link where a file belongs is something the module refuses: the look steps aside for it.
    config.unlink()
    config.symlink_to(unit)
    assert not looks_unchanged(tmp_path, wanted)


def test_an_answer_it_cannot_read_is_never_unchanged(tmp_path):
    wanted = entries(tmp_path)
    files, directories, absent = wanted["files"], wanted["directories"], wanted["absent"]
    assert not probe_unchanged("", files, directories, absent)
    assert not probe_unchanged("D 755 0 0\nF -\nF -\nA -\n", files, directories, absent)
    assert not probe_unchanged("D 755 0 0\nD 755 0 0\n", [], directories, [])
    assert not probe_unchanged("D rwx 0 0\n", [], directories, [])
    # A terminal's carriage returns are read through.
    assert probe_unchanged("D 755 0 0\r\n", [], directories, [])


def _playbook(tmp_path, wanted, diff=False, check=False):
    play = [{"name": "file_set", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "the set", "aicluster.lab.file_set": wanted, "register": "done"},
                       {"name": "show", "check_mode": False,
                        "ansible.builtin.copy": {"content": "{{ done | to_json }}", "dest": str(tmp_path / "result.json"),
                                                 "mode": "0644"}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(tmp_path / "play.yml")] + (["--diff"] if diff else []) + (["--check"] if check else [])
    if not os.path.exists(argv[0]):
        argv[0] = shutil.which("ansible-playbook")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(CHECKOUT, ".collections"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    run = subprocess.run(argv + ["-vvv"], capture_output=True, text=True, env=env, cwd=CHECKOUT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    # -vvv names each module file Ansible sends to the host: the sh look sends none.
    module_ran = any("Using module file" in line and line.rstrip().endswith("file_set.py") for line in run.stdout.splitlines())
    return json.loads((tmp_path / "result.json").read_text()), module_ran


def test_the_action_runs_the_module_only_when_something_differs(tmp_path):
    if not os.path.isdir(os.path.join(CHECKOUT, ".collections", "ansible_collections", "aicluster", "lab")):
        pytest.skip("the collection is not linked under .collections: run ./lab setup")
    wanted = entries(tmp_path / "root")
    checked, ran = _playbook(tmp_path, wanted, check=True, diff=True)
    assert checked["changed"] and ran and not (tmp_path / "root").exists()
    first, ran = _playbook(tmp_path, wanted)
    assert first["changed"] and ran
    again, ran = _playbook(tmp_path, wanted, diff=True)
    assert not again["changed"] and not ran
    assert again["written"] == [] and again["made"] == [] and again["removed"] == [] and again["diff"] == []
    (tmp_path / "root" / "etc" / "k3s" / "config.yaml").write_text("token: other\n")
    fixed, ran = _playbook(tmp_path, wanted, diff=True)
    assert fixed["changed"] and ran
    assert fixed["written"] == [{"path": str(tmp_path / "root" / "etc" / "k3s" / "config.yaml"), "why": "content"}]
