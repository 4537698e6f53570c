# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""console_watch: fatal lines found in real console output, and the wait that stops on them.

Fixtures (tests/unit/fixtures/console/), serial consoles of the lab's Debian 12 guests:
- boot-ok.log: a cold boot of node1 (kernel cmdline with 'quiet'), up to the login prompt.
- panic-init.log: the same image booted with init=/bin/false, up to the kernel's panic.
The serial console ends lines with CRLF; the fixtures keep LF (the repository's rule), and
test_a_line_split_across_reads_is_matched_once_whole feeds CRLF.
"""

import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.console_watch import (
    FATAL_PATTERNS, ConsoleScan, ConsoleWatchError, compile_patterns, failure_message, wait_for_nodes)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "console"
PATTERNS = compile_patterns(FATAL_PATTERNS)


def scan(text, path="node1.console.log"):
    console = ConsoleScan(path, PATTERNS)
    return console.feed(text), console


def test_a_normal_boot_has_no_fatal_line():
    finding, console = scan((FIXTURES / "boot-ok.log").read_text())
    assert finding is None
    assert any("login:" in line for line in console.tail + [console.partial])


def test_a_real_panic_is_found_with_its_line():
    finding, _console = scan((FIXTURES / "panic-init.log").read_text())
    assert finding["pattern"] == "kernel panic"
    assert "Kernel panic - not syncing: Attempted to kill init!" in finding["line"]
    lines = (FIXTURES / "panic-init.log").read_text().split("\n")
    assert "Kernel panic - not syncing" in lines[finding["line_no"] - 1]


@pytest.mark.parametrize("line, pattern", [
    ("You are in emergency mode. After logging in, type \"journalctl -xb\" to view", "emergency mode"),
    ("[  812.44] Out of memory: Killed process 412 (python3) total-vm:40000kB", "out of memory"),
    ("[  812.40] iperf3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0", "out of memory"),
    ("[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.", "a unit the lab needs failed"),
    ("[FAILED] Failed to start systemd-networkd.service - Network Configuration.", "a unit the lab needs failed"),
])
def test_each_fatal_kind_is_named(line, pattern):
    finding, _console = scan("booting\n" + line + "\n")
    assert finding["pattern"] == pattern and finding["line_no"] == 2


def test_an_unrelated_unit_failing_is_left_to_validation():
    finding, _console = scan("[FAILED] Failed to start apt-daily.service - Daily apt download activities.\n")
    assert finding is None


def test_a_line_split_across_reads_is_matched_once_whole():
    console = ConsoleScan("log", PATTERNS)
    assert console.feed("[ 6.1] Kernel pan") is None
    finding = console.feed("ic - not syncing: Attempted to kill init!\r\nmore\n")
    assert finding["line"] == "[ 6.1] Kernel panic - not syncing: Attempted to kill init!"
    assert console.feed("Kernel panic - not syncing: again\n") is finding  # the first one stays


def test_the_log_is_read_in_increments(tmp_path):
    log = tmp_path / "node1.console.log"
    console = ConsoleScan(str(log), PATTERNS)
    assert console.poll() is None  # not written yet
    log.write_text("early boot\n")
    assert console.poll() is None and console.line_no == 1
    with log.open("a") as handle:
        handle.write("[ 6.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert console.poll()["line_no"] == 2


def test_bad_patterns_are_named():
    with pytest.raises(ConsoleWatchError, match=r"fatal_patterns\[0\].regex: '\(' is not a valid regular expression"):
        compile_patterns([{"name": "x", "regex": "("}])
    with pytest.raises(ConsoleWatchError, match=r"fatal_patterns\[1\]: 'panic' must be a dict with name and regex"):
        compile_patterns([{"name": "x", "regex": "y"}, "panic"])


def test_the_wait_stops_at_a_panic_of_a_node_that_is_not_up(tmp_path):
    (tmp_path / "node1.log").write_text("ok\n")
    (tmp_path / "node2.log").write_text("[ 6.1] Kernel panic - not syncing: Attempted to kill init!\n")
    nodes = [{"name": "node1", "address": "a1", "console_log": str(tmp_path / "node1.log")},
             {"name": "node2", "address": "a2", "console_log": str(tmp_path / "node2.log")}]
    result = wait_for_nodes(nodes, PATTERNS, timeout=300, interval=0.01, probe=lambda *_: False, scan_every=0.001)
    assert result["fatal"]["node"] == "node2" and result["waiting"] == ["node1", "node2"]
    message = failure_message(result, 300)
    assert message.startswith("node node2: kernel panic on its console after ")
    assert message.endswith("line 1 of %s: [ 6.1] Kernel panic - not syncing: Attempted to kill init!" % (tmp_path / "node2.log"))


def test_nodes_that_answer_are_up_and_a_silent_one_times_out_with_its_console_tail(tmp_path):
    (tmp_path / "node2.log").write_text("Booting\nnode2 login: ")
    nodes = [{"name": "node1", "address": "up", "console_log": str(tmp_path / "missing.log")},
             {"name": "node2", "address": "down", "console_log": str(tmp_path / "node2.log")}]
    result = wait_for_nodes(nodes, PATTERNS, timeout=0.3, interval=0.01, probe=lambda address, *_: address == "up",
                            scan_every=0.01)
    assert list(result["up"]) == ["node1"] and result["waiting"] == ["node2"] and result["fatal"] is None
    assert failure_message(result, 0.3) == "no SSH answer within 0.3 s from node2 (console ends: Booting)"


def test_all_up_is_no_failure(tmp_path):
    nodes = [{"name": "node1", "address": "up", "console_log": str(tmp_path / "node1.log")}]
    result = wait_for_nodes(nodes, PATTERNS, timeout=30, interval=0.01, probe=lambda *_: True, scan_every=0.01)
    assert result["waiting"] == [] and failure_message(result, 30) is None
