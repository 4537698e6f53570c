# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_set's main() in-process on real files in a temp directory (the tests run as root, as
the module does on a host: ownership is set to root and checked)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.aicluster.lab.plugins.modules import file_set

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="file_set makes files owned by root: the tests run as root")


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def args(tmp_path, **more):
    base = {"directories": [str(tmp_path / "etc" / "k3s")],
            "files": [{"path": str(tmp_path / "etc" / "k3s" / "config.yaml"), "content": "node-ip: 10.0.0.1\n",
                       "mode": "0600"},
                      {"path": str(tmp_path / "unit" / "k3s.service"), "content": "[Unit]\n"}]}
    base.update(more)
    return base


def test_first_call_makes_everything_second_changes_nothing(run_module, tmp_path):
    first = run_module(file_set, args(tmp_path))
    assert first["changed"] and not first.get("failed")
    config = tmp_path / "etc" / "k3s" / "config.yaml"
    assert config.read_text() == "node-ip: 10.0.0.1\n" and mode_of(config) == 0o600
    # A parent not listed is made too, 0755; the file's mode defaults to 0644.
    assert mode_of(tmp_path / "unit") == 0o755 and mode_of(tmp_path / "unit" / "k3s.service") == 0o644
    assert first["written"] == [{"path": str(config), "why": "missing"},
                                {"path": str(tmp_path / "unit" / "k3s.service"), "why": "missing"}]
    assert first["made"] == [str(tmp_path / "etc" / "k3s")]
    again = run_module(file_set, args(tmp_path))
    assert not again["changed"] and again["written"] == [] and again["made"] == []
    # No temporary file is left beside the files.
    assert sorted(os.listdir(tmp_path / "etc" / "k3s")) == ["config.yaml"]


def test_only_what_differs_changes_with_why(run_module, tmp_path):
    run_module(file_set, args(tmp_path))
    config, unit = tmp_path / "etc" / "k3s" / "config.yaml", tmp_path / "unit" / "k3s.service"
    config.chmod(0o644)
    os.chown(unit, 1000, 1000)
    inode = os.stat(unit).st_ino
    done = run_module(file_set, args(tmp_path))
    assert done["changed"]
    assert done["written"] == [{"path": str(config), "why": "mode 0644"}, {"path": str(unit), "why": "owner 1000:1000"}]
    assert mode_of(config) == 0o600 and (os.stat(unit).st_uid, os.stat(unit).st_gid) == (0, 0)
    # A mode or owner alone is set in place, not by writing the file again.
    assert os.stat(unit).st_ino == inode


def test_a_changed_content_is_replaced_whole_with_a_diff(run_module, tmp_path):
    run_module(file_set, args(tmp_path))
    config = tmp_path / "etc" / "k3s" / "config.yaml"
    changed = args(tmp_path, files=[{"path": str(config), "content": "node-ip: 10.0.0.2\n", "mode": "0600"}])
    done = run_module(file_set, changed, diff=True)
    assert done["written"] == [{"path": str(config), "why": "content"}]
    assert done["diff"] == [{"before_header": str(config), "after_header": str(config), "before": "node-ip: 10.0.0.1\n",
                             "after": "node-ip: 10.0.0.2\n"}]
    assert config.read_text() == "node-ip: 10.0.0.2\n" and mode_of(config) == 0o600


def test_check_mode_says_what_would_change_and_changes_nothing(run_module, tmp_path):
    done = run_module(file_set, args(tmp_path), check_mode=True, diff=True)
    assert done["changed"] and [item["why"] for item in done["written"]] == ["missing", "missing"]
    assert done["diff"][0]["before"] == "" and done["diff"][0]["after"] == "node-ip: 10.0.0.1\n"
    assert os.listdir(tmp_path) == []


def test_absent_removes_files_and_refuses_a_directory(run_module, tmp_path):
    run_module(file_set, args(tmp_path))
    old = tmp_path / "etc" / "k3s" / "old.yaml"
    old.write_text("x")
    done = run_module(file_set, {"absent": [str(old), str(tmp_path / "never-there")]})
    assert done["changed"] and done["removed"] == [str(old)] and not old.exists()
    refused = run_module(file_set, {"absent": [str(tmp_path / "etc")]})
    assert refused["failed"] and refused["msg"] == f"{tmp_path / 'etc'}: a directory; only files are removed"


@pytest.mark.parametrize("entry, words", [
    ({"path": "relative/config.yaml", "content": "x"}, "relative/config.yaml: the path must be absolute"),
    ({"path": "/tmp/x", "content": "x", "mode": "644o"}, "/tmp/x: mode '644o' must be an octal string such as '0644'"),
    ({"path": "/tmp/x", "content": "x", "mode": "420"}, None),
])
def test_bad_entries_fail_before_anything_changes(run_module, tmp_path, entry, words):
    if words is None:
        # '420' is a valid octal string (0420), not YAML's reading of 0644: accepted as written.
        entry = dict(entry, path=str(tmp_path / "x"))
        assert not run_module(file_set, {"files": [entry]}).get("failed")
        assert mode_of(tmp_path / "x") == 0o420
        return
    done = run_module(file_set, {"files": [{"path": str(tmp_path / "first"), "content": "y"}, entry]})
    assert done["failed"] and done["msg"] == words
    assert not (tmp_path / "first").exists()


def test_a_directory_where_a_file_goes_is_refused(run_module, tmp_path):
    (tmp_path / "config.yaml").mkdir()
    done = run_module(file_set, {"files": [{"path": str(tmp_path / "config.yaml"), "content": "x"}]})
    assert done["failed"] and done["msg"] == f"{tmp_path / 'config.yaml'}: file entry: something other than a file is in the way"
