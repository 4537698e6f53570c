# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's user-and-directories script (templates/user-dirs.sh.j2), rendered as Ansible
renders it and run by sh (dash on Debian) against a temporary root.

The directories are made for real with install -d under tmp_path, owned by whoever runs the
tests (only root may give a directory to another user). getent, groupadd, useradd and usermod
are stand-ins that log their arguments and keep their own passwd and group files, so the
tests see which commands the script runs, with which arguments, and that a failure stops it
with a message naming the step.
"""

from __future__ import annotations

import grp
import os
import pathlib
import pwd
import shlex
import shutil
import stat
import subprocess

import jinja2
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "exo"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
SHELLS = [shell for shell in ("sh", "dash", "bash") if shutil.which(shell)]

# Stand-ins: each logs "name arg..." (one line, shell-quoted) to $STUB_LOG; STUB_FAIL names one
# that fails with exit 9 and a message on stderr, as the real one would.
STAND_IN = r'''#!/bin/sh
name=$(basename "$0")
printf '%s' "$name" >>"$STUB_LOG"
for arg in "$@"; do printf ' %s' "$(printf '%s' "$arg" | sed "s/'/'\\\\''/g; s/^/'/; s/\$/'/")" >>"$STUB_LOG"; done
echo >>"$STUB_LOG"
if [ "$name" = "${STUB_FAIL:-}" ]; then echo "$name: refused by the test" >&2; exit 9; fi
last=
for arg in "$@"; do last=$arg; done
case $name in
  getent) grep -q "^$last:" "$STUB_DIR/$1" ;;
  groupadd) echo "$last:x:999:" >>"$STUB_DIR/group" ;;
  useradd) echo "$last:x:999:999::/nonexistent:/usr/sbin/nologin" >>"$STUB_DIR/passwd" ;;
esac
'''


def render(keep_trailing_newline=False, **variables):
    """The script as Ansible's template lookup renders it (trim_blocks; an included template's last newline dropped)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=keep_trailing_newline, trim_blocks=True)
    environment.filters["quote"] = lambda value: shlex.quote(str(value))
    values = {"exo_user": DEFAULTS["exo_user"], "exo_group": DEFAULTS["exo_group"], "exo_home": DEFAULTS["exo_home"],
              "ansible_check_mode": False}
    values.update(variables)
    return environment.get_template("user-dirs.sh.j2").render(**values)


def dirs(root, *paths, owner=ME, group=MY_GROUP):
    """Decision entries as exo.decision makes them: the config directory root's (0755), the others 0750."""
    return [{"path": str(root / path.lstrip("/")), "owner": owner, "group": group,
             "mode": "0755" if path.startswith("/etc") else "0750"} for path in paths]


@pytest.fixture(name="host")
def fixture_host(tmp_path):
    """run(script, fail=None) -> (stdout, stderr, rc, calls), with the stand-ins first on PATH."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("getent", "groupadd", "useradd", "usermod"):
        (stubs / name).write_text(STAND_IN)
        (stubs / name).chmod(0o755)
    (stubs / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (stubs / "group").write_text("root:x:0:\n")
    log = tmp_path / "calls.log"

    def run(script, fail=None, shell="sh"):
        done = subprocess.run([shutil.which(shell), "-c", script], capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_DIR": str(stubs), "STUB_LOG": str(log),
                                   "STUB_FAIL": fail or ""})
        calls = log.read_text().splitlines() if log.exists() else []
        return done.stdout, done.stderr, done.returncode, calls

    run.stubs = stubs
    return run


def mode_owner(path):
    info = path.stat()
    return f"{stat.S_IMODE(info.st_mode):04o}", pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("shell", SHELLS)
def test_the_script_is_valid_sh_however_it_is_rendered(tmp_path, check_mode, keep, shell):
    for user in ([], ["user exo does not exist"]):
        text = render(keep, ansible_check_mode=check_mode,
                      exo_decision={"user": user, "dirs": dirs(tmp_path, "/etc/aicluster-lab/exo", "/var/lib/exo")})
        done = subprocess.run([shutil.which(shell), "-n"], input=text, text=True, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_a_fresh_host_gets_the_group_the_user_and_every_directory(host, tmp_path, shell):
    root = tmp_path / "root"
    wanted = dirs(root, "/etc/aicluster-lab/exo", "/var/lib/exo", "/var/lib/exo/models")
    out, err, rc, calls = host(render(exo_decision={"user": ["user exo does not exist"], "dirs": wanted}), shell=shell)
    assert rc == 0, err
    assert calls == [
        "getent 'group' 'exo'", "groupadd '--system' 'exo'", "getent 'passwd' 'exo'",
        "useradd '--system' '--gid' 'exo' '--home-dir' '/var/lib/exo' '--no-create-home' '--shell' '/usr/sbin/nologin' "
        "'--comment' 'EXO (aicluster.lab exo role)' 'exo'"]
    assert out.splitlines()[:2] == ["done: group exo", "done: user exo"]
    # Every missing parent is made with the entry's owner and mode, as ansible.builtin.file made them.
    assert mode_owner(root) == mode_owner(root / "etc") == ("0755", ME, MY_GROUP)
    assert mode_owner(root / "etc/aicluster-lab/exo") == ("0755", ME, MY_GROUP)
    assert mode_owner(root / "var/lib") == mode_owner(root / "var/lib/exo") == ("0750", ME, MY_GROUP)
    assert mode_owner(root / "var/lib/exo/models") == ("0750", ME, MY_GROUP)
    assert f"done: directory {root}/var/lib/exo/models ({ME}:{MY_GROUP} 0750)" in out.splitlines()
    assert all(line.startswith("done: ") for line in out.splitlines())  # what the task's changed_when counts


def test_an_existing_user_with_another_home_is_modified_and_its_group_kept(host):
    (host.stubs / "passwd").write_text("exo:x:998:998::/home/exo:/bin/sh\n")
    (host.stubs / "group").write_text("exo:x:998:\n")
    decision = {"user": ["user exo's home is /home/exo, not /var/lib/exo"], "dirs": []}
    out, err, rc, calls = host(render(exo_decision=decision))
    assert rc == 0, err
    assert calls == ["getent 'group' 'exo'", "getent 'passwd' 'exo'",
                     "usermod '--gid' 'exo' '--home' '/var/lib/exo' '--shell' '/usr/sbin/nologin' "
                     "'--comment' 'EXO (aicluster.lab exo role)' 'exo'"]
    assert out.splitlines() == ["done: user exo: group, home, shell and comment"]


def test_a_directory_changed_by_hand_is_set_back_and_the_user_left_alone(host, tmp_path):
    models = tmp_path / "var/lib/exo/models"
    models.mkdir(parents=True)
    models.chmod(0o777)
    out, err, rc, calls = host(render(exo_decision={"user": [], "dirs": dirs(tmp_path, "/var/lib/exo/models")}))
    assert rc == 0, err
    assert calls == []
    assert mode_owner(models) == ("0750", ME, MY_GROUP)
    assert mode_owner(models.parent)[0] != "0750"  # an existing parent is not touched
    assert out.splitlines() == [f"done: directory {models} ({ME}:{MY_GROUP} 0750)"]


def test_templated_values_are_quoted(host, tmp_path):
    odd = tmp_path / "it's a dir; touch pwned $(touch pwned2)"
    out, err, rc, _calls = host(render(exo_decision={"user": [], "dirs": [
        {"path": str(odd), "owner": ME, "group": MY_GROUP, "mode": "0750"}]}))
    assert rc == 0, err
    assert odd.is_dir() and mode_owner(odd)[0] == "0750"
    assert not list(tmp_path.glob("pwned*")) and not list(pathlib.Path.cwd().glob("pwned*"))
    user = render(exo_user="e x'o", exo_group="g;rp", exo_home="/h o/me",
                  exo_decision={"user": ["user does not exist"], "dirs": []})
    assert "useradd --system --gid 'g;rp' --home-dir '/h o/me'" in user and "'e x'\"'\"'o'" in user


def test_check_mode_changes_nothing_and_says_what_it_would_do(host, tmp_path):
    root = tmp_path / "root"
    script = render(ansible_check_mode=True, exo_decision={"user": ["user exo does not exist"],
                                                           "dirs": dirs(root, "/etc/aicluster-lab/exo", "/var/lib/exo")})
    out, err, rc, calls = host(script)
    assert rc == 0, err
    assert not root.exists()
    assert calls == ["getent 'group' 'exo'", "getent 'passwd' 'exo'"]  # reads only
    assert out.splitlines() == [
        "would: group exo", "would: user exo",
        f"would: directory {root} ({ME}:{MY_GROUP} 0755)", f"would: directory {root}/etc ({ME}:{MY_GROUP} 0755)",
        f"would: directory {root}/etc/aicluster-lab ({ME}:{MY_GROUP} 0755)",
        f"would: directory {root}/etc/aicluster-lab/exo ({ME}:{MY_GROUP} 0755)",
        f"would: directory {root}/var ({ME}:{MY_GROUP} 0750)", f"would: directory {root}/var/lib ({ME}:{MY_GROUP} 0750)",
        f"would: directory {root}/var/lib/exo ({ME}:{MY_GROUP} 0750)"]


def test_a_failed_step_stops_the_script_and_is_named(host, tmp_path):
    root = tmp_path / "root"
    out, err, rc, calls = host(render(exo_decision={"user": ["user exo does not exist"], "dirs": dirs(root, "/var/lib/exo")}),
                               fail="useradd")
    assert rc == 1
    assert "useradd: refused by the test" in err and "exo setup: user exo failed (exit 9)" in err
    assert out.splitlines() == ["done: group exo"] and calls[-1].startswith("useradd ")
    assert not root.exists()  # nothing after the failed step ran


def test_something_in_the_way_of_a_directory_is_named(host, tmp_path):
    (tmp_path / "var").write_text("a file\n")
    out, err, rc, _calls = host(render(exo_decision={"user": [], "dirs": dirs(tmp_path, "/var/lib/exo", "/etc/x")}))
    assert rc == 1
    assert f"exo setup: directory {tmp_path}/var ({ME}:{MY_GROUP} 0750) failed (exit 1)" in err, err
    assert out == "" and not (tmp_path / "etc").exists()


def test_the_task_runs_the_template_and_counts_its_lines():
    tasks = yaml.safe_load((ROLE / "tasks" / "setup.yml").read_text())
    task = next(task for task in tasks if task.get("ansible.builtin.raw", "").find("user-dirs.sh.j2") >= 0)
    assert task["check_mode"] is False  # the script itself changes nothing in check mode
    assert "'^(done|would):'" in task["changed_when"]
