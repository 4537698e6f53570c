# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollback program the host runs: importable here, self-contained there.

test_network_commit.py runs it for real (detached, then restoring); these tests pin what
makes that possible: the host gets this very file, it needs nothing but the standard
library, and its file helpers are the ones network_commit uses.
"""

from __future__ import annotations

import ast
import os
import pathlib
import stat
import subprocess
import sys

from ansible_collections.aicluster.lab.plugins.module_utils import network_commit, network_rollback

SOURCE = pathlib.Path(network_rollback.__file__)


def test_the_host_gets_this_very_file():
    assert network_commit.rollback_source() == SOURCE.read_bytes()


def test_it_imports_only_the_standard_library():
    tree = ast.parse(SOURCE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_network_commit_shares_its_file_helpers():
    assert network_commit.read_owned is network_rollback.read_owned
    assert network_commit.atomic_write is network_rollback.atomic_write


def test_read_owned_takes_only_the_prefixed_files_and_links(tmp_path):
    (tmp_path / "10-aicluster-eth1.network").write_bytes(b"[Match]\nName=eth1\n")
    os.chmod(tmp_path / "10-aicluster-eth1.network", 0o640)
    (tmp_path / "10-aicluster-bond0.netdev").symlink_to("/dev/null")
    (tmp_path / "10-aicluster-drop.d").mkdir()
    (tmp_path / "99-other.network").write_bytes(b"")
    owned = network_rollback.read_owned(str(tmp_path), "10-aicluster-")
    assert sorted(owned) == ["10-aicluster-bond0.netdev", "10-aicluster-eth1.network"]
    assert owned["10-aicluster-eth1.network"]["data"] == b"[Match]\nName=eth1\n"
    assert owned["10-aicluster-eth1.network"]["mode"] == 0o640
    assert owned["10-aicluster-bond0.netdev"]["symlink"] == "/dev/null"
    assert network_rollback.read_owned(str(tmp_path / "missing"), "10-aicluster-") == {}


def test_atomic_write_leaves_no_temp_file_and_sets_the_mode(tmp_path):
    path = tmp_path / "10-aicluster-eth1.network"
    network_rollback.atomic_write(str(path), b"new\n", 0o600)
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["10-aicluster-eth1.network"]


def test_run_as_a_program_with_nothing_to_do(tmp_path):
    # A change already confirmed: the program exits 0 and changes nothing.
    (tmp_path / "confirmed").write_text("{}\n")
    result = subprocess.run([sys.executable, str(SOURCE), str(tmp_path), "now", "test"], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "confirmed exists, nothing to do" in result.stdout
