# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The actions that look with plain sh before they run their module (file_set, network_apply):
file_set's look on real files, and both actions in real ansible-playbook runs on localhost -
a look must never vouch for what the module would change. (network_apply's look is tested
against the module itself in tests/unit/plugins/modules/test_network_apply.py.)"""

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
    d = directories[0]
    assert not probe_unchanged("", files, directories, absent)
    assert not probe_unchanged(f"directory|755 0 0|{d}\n", [], directories, [])  # no end marker
    assert not probe_unchanged(f"directory|rwx 0 0|{d}\n==\n", [], directories, [])
    assert not probe_unchanged("directory|755 0 0\n==\n", [], directories, [])
    assert not probe_unchanged(f"==\nnot-a-digest  {d}\n", [], directories, [])
    # A terminal's carriage returns are read through.
    assert probe_unchanged(f"directory|755 0 0|{d}\r\n==\r\n", [], directories, [])
    # A name stat or sha256sum would not print as it is is left to the module.
    assert not probe_unchanged("directory|755 0 0|/a\\b\n==\n", [], ["/a\\b"], [])


def _playbook(tmp_path, module, tasks, diff=False, check=False):
    """Run tasks on localhost; return the first task's registered result and whether ``module``'s
    code was sent to the host (-vvv names each module file Ansible sends; a look sends none)."""
    tasks = [dict(tasks[0], register="done")] + tasks[1:] + [
        {"name": "show", "check_mode": False,
         "ansible.builtin.copy": {"content": "{{ done | to_json }}", "dest": str(tmp_path / "result.json"), "mode": "0644"}}]
    (tmp_path / "play.yml").write_text(json.dumps([{"name": "look", "hosts": "localhost", "gather_facts": False,
                                                    "tasks": tasks}]))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(tmp_path / "play.yml"), "-vvv"] + (["--diff"] if diff else []) + (["--check"] if check else [])
    if not os.path.exists(argv[0]):
        argv[0] = shutil.which("ansible-playbook")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(CHECKOUT, ".collections"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=CHECKOUT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    module_ran = any("Using module file" in line and line.rstrip().endswith("/%s.py" % module)
                     for line in run.stdout.splitlines())
    return json.loads((tmp_path / "result.json").read_text()), module_ran


def _linked():
    if not os.path.isdir(os.path.join(CHECKOUT, ".collections", "ansible_collections", "aicluster", "lab")):
        pytest.skip("the collection is not linked under .collections: run ./lab setup")


def test_the_action_runs_the_module_only_when_something_differs(tmp_path):
    _linked()
    wanted = entries(tmp_path / "root")
    task = [{"name": "the set", "aicluster.lab.file_set": wanted}]
    checked, ran = _playbook(tmp_path, "file_set", task, check=True, diff=True)
    assert checked["changed"] and ran and not (tmp_path / "root").exists()
    first, ran = _playbook(tmp_path, "file_set", task)
    assert first["changed"] and ran
    again, ran = _playbook(tmp_path, "file_set", task, diff=True)
    assert not again["changed"] and not ran
    assert again["written"] == [] and again["made"] == [] and again["removed"] == [] and again["diff"] == []
    (tmp_path / "root" / "etc" / "k3s" / "config.yaml").write_text("token: other\n")
    fixed, ran = _playbook(tmp_path, "file_set", task, diff=True)
    assert fixed["changed"] and ran
    assert fixed["written"] == [{"path": str(tmp_path / "root" / "etc" / "k3s" / "config.yaml"), "why": "content"}]


def test_network_apply_runs_its_module_only_when_it_has_work(tmp_path):
    _linked()
    files = {"10-aicluster-eth1.network": "[Match]\nName=eth1\n"}
    args = {"files": files, "directory": str(tmp_path / "network"), "state_dir": str(tmp_path / "state"),
            "reload": [["true"]], "rollback_timeout": 60}
    confirm = {"name": "confirm", "aicluster.lab.network_confirm": {"change_id": "{{ done.change_id }}",
                                                                    "state_dir": args["state_dir"]},
               "when": "done.armed"}
    (tmp_path / "network").mkdir()
    first, ran = _playbook(tmp_path, "network_apply", [{"name": "apply", "aicluster.lab.network_apply": args}, confirm])
    assert first["changed"] and first["armed"] and ran
    again, ran = _playbook(tmp_path, "network_apply", [{"name": "apply", "aicluster.lab.network_apply": args}, confirm],
                           diff=True)
    assert not again["changed"] and not again["armed"] and not ran and again["diff"] == []
    assert again["msg"] == "no change: the 1 owned files in %s are as wanted" % args["directory"]
    (tmp_path / "network" / "10-aicluster-eth1.network").write_text("[Match]\nName=eth2\n")
    checked, ran = _playbook(tmp_path, "network_apply", [{"name": "apply", "aicluster.lab.network_apply": args}],
                             check=True)
    assert checked["changed"] and checked["files_changed"] == ["10-aicluster-eth1.network"] and ran
