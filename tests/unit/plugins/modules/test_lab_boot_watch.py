# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab_boot_watch end to end: an SSH-like listener on 127.0.0.1 and real console logs."""

from __future__ import annotations

import pathlib
import shutil
import socket
import threading

import pytest

from ansible_collections.aicluster.lab.plugins.modules import lab_boot_watch

PANIC_LOG = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "console" / "panic-init.log"


@pytest.fixture
def ssh_like():
    """A listener that greets each connection with an OpenSSH banner, as sshd does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _addr = server.accept()
            except OSError:
                continue
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def closed_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_a_node_that_answers_with_a_banner_is_up(run_module, ssh_like, tmp_path):
    result = run_module(lab_boot_watch, {"nodes": [{"name": "node1", "address": "127.0.0.1",
                                                    "console_log": str(tmp_path / "node1.log")}],
                                         "port": ssh_like, "timeout": 30, "interval": 0.1}, check_mode=True)
    assert not result.get("failed"), result
    assert list(result["ssh_s"]) == ["node1"] and result["waiting"] == [] and result["fatal"] is None
    assert result["changed"] is False


def test_a_panic_ends_the_wait_long_before_the_timeout(run_module, tmp_path):
    log = tmp_path / "node1.console.log"
    shutil.copy(PANIC_LOG, log)
    result = run_module(lab_boot_watch, {"nodes": [{"name": "node1", "address": "127.0.0.1", "console_log": str(log)}],
                                         "port": closed_port(), "timeout": 600, "interval": 0.1})
    assert result["failed"] and result["fatal"]["pattern"] == "kernel panic"
    assert result["msg"].startswith("node node1: kernel panic on its console after ")
    assert "Attempted to kill init!" in result["msg"] and str(log) in result["msg"]
    assert result["elapsed_s"] < 600


def test_custom_patterns_replace_the_default(run_module, tmp_path):
    log = tmp_path / "node1.console.log"
    log.write_text("[  3.2] ACME: firmware refused\n")
    nodes = [{"name": "node1", "address": "127.0.0.1", "console_log": str(log)}]
    result = run_module(lab_boot_watch, {"nodes": nodes, "port": closed_port(), "timeout": 600, "interval": 0.1,
                                         "fatal_patterns": [{"name": "firmware", "regex": "firmware refused"}]})
    assert result["failed"] and result["fatal"]["pattern"] == "firmware"


@pytest.mark.parametrize("args, message", [
    ({"timeout": 0}, "timeout: 0 must be at least 1 second"),
    ({"interval": 0}, "interval: 0.0 must be more than 0 seconds"),
    ({"fatal_patterns": [{"name": "x", "regex": "("}]}, "fatal_patterns[0].regex: '(' is not a valid regular expression"),
])
def test_bad_options_are_named(run_module, tmp_path, args, message):
    nodes = [{"name": "node1", "address": "127.0.0.1", "console_log": str(tmp_path / "log")}]
    result = run_module(lab_boot_watch, dict({"nodes": nodes}, **args))
    assert result["failed"] and message in result["msg"], result
