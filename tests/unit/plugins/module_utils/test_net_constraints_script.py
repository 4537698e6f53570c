# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The net_constraints role's plain-sh scripts: what they run, and what the controller reads back.

The renderer is checked on the shipped profiles (profiles/constraints/) against the tc commands
the net_constraint module builds (fixtures/tc/README.md), the reader on sections assembled from
real output (fixtures/tc: ``tc -j qdisc show``, fixtures/ping, fixtures/iperf3: ``iperf3 -J``).
Then each script runs under sh (and bash) with stand-ins for tc, ping and iperf3 first on PATH
that print those fixtures and record their argv: the order of the calls, the retry while the
iperf3 server refuses, and the trap that removes the constraint when the script stops midway.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.net_constraints import (
    FilterModule,
    net_constraints_checks,
    net_constraints_link,
    net_constraints_run,
    net_constraints_script,
)
from ansible_collections.aicluster.lab.plugins.module_utils import net_constraints_script as ncs
from ansible_collections.aicluster.lab.plugins.module_utils import tc_constraint as tcc
from ansible_collections.aicluster.lab.plugins.module_utils.iperf3 import iperf3_figures
from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary

ROOT = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "unit" / "fixtures"
PROFILES = {path.stem: dict(yaml.safe_load(path.read_text()), name=path.stem)
            for path in sorted((ROOT / "profiles" / "constraints").glob("*.yml"))}
DEV = "eth1.200"
LINK = {"interface": DEV, "mtu": 1500, "constraint": "no constraint (noqueue)", "error": "", "remove": ""}
PROBE = {"peer": "192.168.200.12", "ping_count": 300, "ping_interval_ms": 10, "iperf_s": 3, "iperf_port": 5202}
REPLACE = f"tc qdisc replace dev {DEV}"
# The net_constraint module's commands for each shipped profile from the kernel's default root
# (the same as fixtures/tc/README.md's for these shapes).
APPLY = {
    "latency": [f"{REPLACE} root handle 1: netem limit 1000 delay 40000us 5000us"],
    "lossy": [f"{REPLACE} root handle 1: netem limit 1000 loss 5%"],
    "constrained": [f"{REPLACE} root handle 2: tbf rate 50000000bit burst 31250b latency 50000us"],
    "degraded": [f"{REPLACE} root handle 1: netem limit 1000 delay 20000us loss 1%",
                 f"{REPLACE} parent 1:1 handle 10: tbf rate 100000000bit burst 62500b latency 50000us"],
}
# Shapes with a capture of what tc shows once they are applied.
APPLIED = {"latency": "netem-delay-jitter", "lossy": "netem-loss", "constrained": "tbf-rate"}
# netem-tbf-delay-loss-rate.json: delay 20 ms, loss 2 %, 100 Mbit/s.
TWO_COMMANDS = {"name": "congested", "delay_ms": 20, "loss_percent": 2, "rate_mbit": 100}


def fixture(kind, name):
    return (FIXTURES / kind / name).read_text()


def tc_show(name):
    return fixture("tc", f"{name}.json").strip()


PING = fixture("ping", "iputils-ipv4-ok.txt").strip()
IPERF_OK = fixture("iperf3", "tcp.json").strip()
IPERF_REFUSED = fixture("iperf3", "error-refused.json").strip()


def section(name, rc, output=""):
    return f"### {name}\n{rc}\n{output}\n"


def profile_output(applied, during_iperf=IPERF_OK, after_iperf=IPERF_OK, after="vlan-default", commands=1):
    """What a profile script prints when every step runs, from real captures."""
    return ("".join(section(f"apply.{index}", 0) for index in range(1, commands + 1))
            + section("qdisc.during", 0, tc_show(applied)) + section("ping.during", 0, PING)
            + section("iperf.during", 0, during_iperf) + section("remove", 0)
            + section("qdisc.after", 0, tc_show(after)) + section("ping.after", 0, PING)
            + section("iperf.after", 0, after_iperf))


def applied_lines(script):
    return [line.split(" ", 2)[2].removesuffix(" || exit 1") for line in script.splitlines() if line.startswith("run apply.")]


# ---------------------------------------------------------------- rendering

@pytest.mark.parametrize("name", sorted(APPLY))
def test_each_shipped_profile_is_applied_with_the_modules_tc_commands(name):
    script = net_constraints_script(PROFILES[name], LINK, PROBE)
    assert applied_lines(script) == APPLY[name]
    # The same argv the module plans from a default root (read from a real capture).
    wanted = tcc.validate(dict({key: PROFILES[name].get(key) for key in ncs.VALUES}, interface=DEV))
    assert [" ".join(argv) for argv in tcc.plan_present(DEV, tcc.parse_qdiscs(tc_show("vlan-default")), wanted, 1500)
            ] == APPLY[name]


def test_the_profile_script_applies_shows_measures_removes_and_measures_again_in_this_order():
    script = net_constraints_script(PROFILES["degraded"], LINK, PROBE)
    steps = [line for line in script.splitlines() if not line.startswith((" ", "#", "}")) and "()" not in line]
    ping = f"ping -n -q -c 300 -i 0.01 -W 2 -I {DEV} 192.168.200.12"
    assert steps == [
        "applied=", "trap cleanup EXIT", "trap 'exit 129' HUP", "trap 'exit 130' INT", "trap 'exit 141' PIPE",
        "trap 'exit 143' TERM", "applied=1",
        f"run apply.1 {APPLY['degraded'][0]} || exit 1", f"run apply.2 {APPLY['degraded'][1]} || exit 1",
        f"run qdisc.during tc -j qdisc show dev {DEV}", f"run ping.during {ping}", "iperf iperf.during",
        "remove remove || exit 1", "applied=",
        f"run qdisc.after tc -j qdisc show dev {DEV}", f"run ping.after {ping}", "iperf iperf.after"]
    assert "out=$(timeout -k 5 153 iperf3 --client 192.168.200.12 --port 5202 --time 3 --json 2>&1)" in script
    assert f"out=$(tc qdisc del dev {DEV} root 2>&1)" in script


def test_the_trap_removes_the_constraint_first_and_prints_after():
    script = net_constraints_script(PROFILES["latency"], LINK, PROBE)
    cleanup = script[script.index("cleanup() {"):script.index("\n}\n", script.index("cleanup() {"))]
    assert cleanup.splitlines()[1:] == [
        "  status=$?", "  trap '' HUP INT TERM PIPE", '  if [ -n "$applied" ]; then', "    applied=",
        "    remove cleanup", "  fi", '  exit "$status"']
    remove = script[script.index("remove() {"):script.index("cleanup() {")]
    assert remove.index("tc qdisc del") < remove.index("printf")
    # Only "nothing to delete" is no failure.
    assert ("*'Cannot delete qdisc with handle of zero'*|*'Cannot find specified qdisc on specified device'*) rc=0 ;;"
            in remove)


def test_the_baseline_only_measures():
    script = net_constraints_script("baseline", LINK, PROBE)
    assert "tc " not in script and "trap" not in script
    assert script.splitlines()[-2:] == [f"run ping.baseline ping -n -q -c 300 -i 0.01 -W 2 -I {DEV} 192.168.200.12",
                                        "iperf iperf.baseline"]


def test_the_link_read():
    assert net_constraints_script("link", {"interface": DEV}).splitlines()[-2:] == [
        f"run mtu cat /sys/class/net/{DEV}/mtu", f"run qdisc tc -j qdisc show dev {DEV}"]


def test_words_are_quoted_for_sh():
    # Linux takes any name but '/', ':' and whitespace (15 bytes at most).
    link = dict(LINK, interface="v'$(x);`y`")
    script = net_constraints_script(PROFILES["lossy"], link, dict(PROBE, peer="fe80::1%v'x"))
    assert """run apply.1 tc qdisc replace dev 'v'"'"'$(x);`y`' root handle 1: netem limit 1000 loss 5% || exit 1""" in script
    assert """-I 'v'"'"'$(x);`y`' 'fe80::1%v'"'"'x'""" in script
    assert "run mtu cat '/sys/class/net/v'\"'\"'$(x);`y`/mtu'" in net_constraints_script("link", link)


@pytest.mark.parametrize("profile, link, probe, message", [
    ({"name": "lossy", "loss_percent": 101}, LINK, PROBE,
     "net_constraints_script: constraint profile lossy: loss_percent: 101 must be between 0 and 100"),
    ({"name": "nothing"}, LINK, PROBE, "net_constraints_script: constraint profile nothing: state=present needs something"),
    (PROFILES["lossy"], dict(LINK, interface="a/b"), PROBE, "net_constraints_script: interface: 'a/b' is not an interface name"),
    (PROFILES["lossy"], LINK, dict(PROBE, peer="-f"), "net_constraints_script: the probe's peer: '-f' is not an address"),
    (PROFILES["lossy"], LINK, dict(PROBE, iperf_s=0), "net_constraints_script: the probe's iperf_s: 0 must be > 0"),
    (PROFILES["lossy"], LINK, {"peer": "x"}, "net_constraints_script: the probe lacks ping_count, ping_interval_ms"),
    ("lossy", LINK, PROBE, "net_constraints_script: the input must be 'link', 'baseline' or a constraint profile"),
    ("link", DEV, None, "net_constraints_script: the link must be a dict with the interface"),
])
def test_rendering_errors_name_what_is_wrong(profile, link, probe, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        net_constraints_script(profile, link, probe)


def test_the_mtu_sizes_the_tbf():
    # Two frames of a 9000 byte MTU are more than 5 ms of 20 Mbit/s (12500 bytes).
    script = net_constraints_script({"name": "thin", "rate_mbit": 20}, dict(LINK, mtu=9000), PROBE)
    assert applied_lines(script) == [f"{REPLACE} root handle 2: tbf rate 20000000bit burst 18036b latency 50000us"]
    unknown = net_constraints_script({"name": "thin", "rate_mbit": 1}, dict(LINK, mtu=None), PROBE)
    assert applied_lines(unknown) == [f"{REPLACE} root handle 2: tbf rate 1000000bit burst 3036b latency 50000us"]


# ---------------------------------------------------------------- reading

@pytest.mark.parametrize("name", sorted(APPLIED))
def test_a_run_reads_as_the_phases_the_verdicts_take(name):
    read = net_constraints_run({"stdout": profile_output(APPLIED[name]), "stderr": "", "rc": 0}, PROFILES[name], LINK)
    figures = dict(parse_ping_summary(PING), mbps=iperf3_figures(IPERF_OK)["received_mbps"], iperf_error="")
    assert read["error"] == ""
    assert read["measured"] == {"during": figures, "after": figures}
    assert read["applied"] == tcc.describe(tcc.summarize(tcc.parse_qdiscs(tc_show(APPLIED[name]))))
    assert [" ".join(argv) for argv in read["commands"]] == APPLY[name]
    # What the verdicts make of it: the same filter the role calls next.
    baseline = net_constraints_run({"stdout": section("ping.baseline", 0, PING) + section("iperf.baseline", 0, IPERF_OK)},
                                   "baseline", LINK)
    assert baseline == {"measured": {"baseline": figures}, "applied": "", "commands": [], "error": ""}
    checks = net_constraints_checks(PROFILES[name], dict(baseline["measured"], **read["measured"]))
    assert [check["name"] for check in checks] == [f"constraint_{name}", f"constraint_{name}_removed"]
    assert checks[1]["passed"], checks[1]["message"]


def test_iperf3_errors_and_stray_lines_are_figures_not_failures():
    stray = "warning: something iperf3 printed on stderr\n" + IPERF_OK
    read = net_constraints_run(profile_output("netem-loss", during_iperf=IPERF_REFUSED, after_iperf=stray),
                               PROFILES["lossy"], LINK)
    assert read["error"] == ""
    assert read["measured"]["during"]["mbps"] is None
    assert read["measured"]["during"]["iperf_error"] == "unable to connect to server: Connection refused"
    assert read["measured"]["after"]["mbps"] == iperf3_figures(IPERF_OK)["received_mbps"]
    missing = net_constraints_run(section("ping.baseline", 2, "ping: connect: Network is unreachable")
                                  + section("iperf.baseline", 127, "sh: 1: iperf3: not found"), "baseline", LINK)
    assert missing["measured"]["baseline"] == {"mbps": None, "iperf_error": "iperf3 gave no JSON: sh: 1: iperf3: not found"}
    # The verdict names it, as before.
    check = net_constraints_checks(PROFILES["lossy"], {"baseline": missing["measured"]["baseline"], **read["measured"]})[0]
    assert "no throughput figure (unable to connect to server: Connection refused)" in check["message"]


def test_a_failed_tc_change_is_reported_with_tcs_message():
    output = (section("apply.1", 0) + section("apply.2", 2, "Error: Specified qdisc kind is unknown.")
              + section("cleanup", 0))
    read = net_constraints_run({"stdout": output, "stderr": "", "rc": 1}, TWO_COMMANDS, LINK)
    assert read["error"] == (
        f"interface {DEV}: tc qdisc replace dev {DEV} parent 1:1 handle 10: tbf rate 100000000bit burst 62500b "
        "latency 50000us failed (rc 2): Error: Specified qdisc kind is unknown.; the script's trap removed the constraint")
    first = net_constraints_run(section("apply.1", 2, "Error: Specified qdisc kind is unknown.")
                                + section("cleanup", 0, "Error: Cannot delete qdisc with handle of zero."),
                                PROFILES["lossy"], LINK)
    assert first["error"] == (f"interface {DEV}: {APPLY['lossy'][0]} failed (rc 2): Error: Specified qdisc kind is unknown.; "
                              "the script's trap found no constraint left to remove")
    assert first["measured"]["during"] == {"mbps": None, "iperf_error": "not measured: the script stopped before"}


def test_qdiscs_that_do_not_apply_the_profile_are_an_error():
    # tc shows 2 % loss where the profile asks 1 %.
    read = net_constraints_run(profile_output("netem-tbf-delay-loss-rate", commands=2), PROFILES["degraded"], LINK)
    assert read["error"] == (f"interface {DEV}: after 2 tc command(s) tc shows delay 20ms loss 2% rate 100mbit (netem, tbf), "
                             "not delay 20ms loss 1% rate 100mbit (netem, tbf)")
    assert net_constraints_run(profile_output("netem-tbf-delay-loss-rate", commands=2), TWO_COMMANDS, LINK)["error"] == ""


def test_a_constraint_still_there_after_its_removal_is_an_error():
    read = net_constraints_run(profile_output("netem-delay-jitter", after="netem-delay-jitter"), PROFILES["latency"], LINK)
    assert read["error"] == f"interface {DEV}: the root qdisc is still netem after deleting it"
    failed = (section("apply.1", 0) + section("qdisc.during", 0, tc_show("netem-loss")) + section("ping.during", 0, PING)
              + section("iperf.during", 0, IPERF_OK) + section("remove", 2, "Error: Operation not permitted.")
              + section("cleanup", 2, "Error: Operation not permitted."))
    assert net_constraints_run(failed, PROFILES["lossy"], LINK)["error"] == (
        f"interface {DEV}: tc qdisc del dev {DEV} root failed (rc 2): Error: Operation not permitted.; "
        f"the script's trap could not remove the constraint: tc qdisc del dev {DEV} root failed (rc 2): "
        "Error: Operation not permitted.")


def test_a_script_that_did_not_run_or_stopped_midway():
    assert net_constraints_run({"stdout": "", "stderr": "sh: 1: Syntax error", "rc": 2}, PROFILES["lossy"], LINK)["error"] == (
        f"interface {DEV}: the script stopped before {APPLY['lossy'][0]} ran (rc 2): sh: 1: Syntax error")
    killed = (section("apply.1", 0) + section("qdisc.during", 0, tc_show("netem-loss")) + section("ping.during", 0, PING)
              + section("cleanup", 0))
    read = net_constraints_run({"stdout": killed, "rc": 143}, PROFILES["lossy"], LINK)
    assert read["error"] == (f"interface {DEV}: the script stopped before it removed the constraint (rc 143); "
                             "the script's trap removed the constraint")
    assert read["measured"]["during"]["received"] == 5


# ---------------------------------------------------------------- the link

def link_output(qdisc, mtu=(0, "1500")):
    return section("mtu", *mtu) + section("qdisc", 0, tc_show(qdisc))


def test_a_default_root_is_ready():
    assert net_constraints_link({"stdout": link_output("vlan-default"), "rc": 0}, DEV) == LINK
    assert net_constraints_link(link_output("physical-default", (0, "9000")), "eth1")["mtu"] == 9000


def test_a_foreign_root_is_refused_and_left_alone():
    link = net_constraints_link(link_output("htb-foreign"), DEV)
    assert link["error"] == (f"interface {DEV}: the root qdisc is htb (handle 1:), not one net_constraint manages (netem, tbf); "
                             "the role leaves it as it is and applies no profile (aicluster.lab.net_constraint with "
                             "state: absent and force: true removes it)")
    assert link["remove"] == ""


@pytest.mark.parametrize("name", ["netem-delay-jitter", "tbf-rate", "netem-tbf-delay-loss-rate", "netem-clsact"])
def test_a_constraint_left_by_an_earlier_run_is_removed(name):
    link = net_constraints_link(link_output(name), DEV)
    assert link["error"] == "" and link["remove"] == f"tc qdisc del dev {DEV} root"


@pytest.mark.parametrize("output, error", [
    (section("mtu", 1, "cat: /sys/class/net/eth1.200/mtu: No such file or directory")
     + section("qdisc", 1, 'Cannot find device "eth1.200"'), f"interface: '{DEV}' does not exist on this host"),
    (section("mtu", 0, "1500") + section("qdisc", 127, "sh: 1: tc: not found"),
     f"interface {DEV}: tc -j qdisc show failed (rc 127): sh: 1: tc: not found"),
    (section("mtu", 0, "1500") + section("qdisc", 0, "qdisc noqueue 0: root"),
     f"interface {DEV}: cannot read the output of tc -j qdisc show: Expecting value: line 1 column 1 (char 0)"),
    ("", f"interface {DEV}: the script stopped before it read the interface"),
])
def test_a_link_that_cannot_be_read(output, error):
    assert net_constraints_link(output, DEV)["error"] == error


def test_filter_input_errors():
    with pytest.raises(AnsibleFilterError, match="net_constraints_link: the input must be a registered raw result"):
        net_constraints_link(["x"], DEV)
    with pytest.raises(AnsibleFilterError, match="net_constraints_run: the input must be 'baseline' or a constraint profile"):
        net_constraints_run("", "lossy", LINK)
    with pytest.raises(AnsibleFilterError, match="net_constraints_run: the input must be a registered raw result with stdout"):
        net_constraints_run({"rc": 0}, "baseline", LINK)
    filters = FilterModule().filters()
    assert (filters["net_constraints_link"], filters["net_constraints_script"], filters["net_constraints_run"]) == (
        net_constraints_link, net_constraints_script, net_constraints_run)


# ---------------------------------------------------------------- running the scripts under sh

SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]

# Stand-ins: each records its argv (one call a line, words separated by \x1f), then acts from
# files in $STUB_DIR. tc keeps whether a constraint is on (the file "on").
STUB_TC = r"""#!/bin/sh
printf '%s\037' tc "$@" >> "$STUB_DIR/calls"; printf '\n' >> "$STUB_DIR/calls"
case "$1 $2 $3" in
  "-j qdisc show") if [ -f "$STUB_DIR/on" ]; then cat "$STUB_DIR/applied.json"; else cat "$STUB_DIR/default.json"; fi ;;
  "qdisc replace dev")
    n=$(($(cat "$STUB_DIR/replaces" 2>/dev/null || echo 0) + 1)); echo "$n" > "$STUB_DIR/replaces"
    if [ "$n" = "$(cat "$STUB_DIR/fail_replace" 2>/dev/null)" ]; then echo "Error: Specified qdisc kind is unknown." >&2; exit 2; fi
    touch "$STUB_DIR/on" ;;
  "qdisc del dev")
    if [ -f "$STUB_DIR/on" ]; then rm "$STUB_DIR/on"; else echo "Error: Cannot delete qdisc with handle of zero." >&2; exit 2; fi ;;
  *) echo "unexpected tc call: $*" >&2; exit 99 ;;
esac
"""
STUB_PING = r"""#!/bin/sh
printf '%s\037' ping "$@" >> "$STUB_DIR/calls"; printf '\n' >> "$STUB_DIR/calls"
cat "$STUB_DIR/ping.txt"
"""
# iperf3 acts by its run number: the word on that line of $STUB_DIR/iperf (ok when none):
# ok, refused, fail (an error and exit 1), kill (TERM to the script, as when it is stopped).
STUB_IPERF = r"""#!/bin/sh
printf '%s\037' iperf3 "$@" >> "$STUB_DIR/calls"; printf '\n' >> "$STUB_DIR/calls"
n=$(($(cat "$STUB_DIR/iperf_runs" 2>/dev/null || echo 0) + 1)); echo "$n" > "$STUB_DIR/iperf_runs"
case $(sed -n "${n}p" "$STUB_DIR/iperf" 2>/dev/null) in
  refused) cat "$STUB_DIR/refused.json" ;;
  fail) echo "iperf3: error - control socket has closed unexpectedly" >&2; exit 1 ;;
  kill) kill -TERM "$(cat "$STUB_DIR/pid")"; exit 1 ;;
  *) cat "$STUB_DIR/tcp.json" ;;
esac
"""


@pytest.fixture
def stubs(tmp_path):
    for name, text in (("tc", STUB_TC), ("ping", STUB_PING), ("iperf3", STUB_IPERF)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
    (tmp_path / "default.json").write_text(tc_show("vlan-default"))
    (tmp_path / "ping.txt").write_text(PING + "\n")
    (tmp_path / "tcp.json").write_text(IPERF_OK + "\n")
    (tmp_path / "refused.json").write_text(IPERF_REFUSED + "\n")
    return tmp_path


def run_script(shell, script, stubs):
    """Run a script the way raw does (``$SHELL -c``), stand-ins first on PATH; its pid in $STUB_DIR/pid."""
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", STUB_DIR=str(stubs))
    proc = subprocess.run([shutil.which(shell), "-c", 'echo $$ > "$STUB_DIR/pid"\n' + script], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    calls = [line.split("\x1f")[:-1] for line in (stubs / "calls").read_text().splitlines()] \
        if (stubs / "calls").exists() else []
    return proc, calls


def names(calls):
    """Each call in short: the command and what it does."""
    short = {("tc", "qdisc", "replace"): "tc replace", ("tc", "qdisc", "del"): "tc del", ("tc", "-j", "qdisc"): "tc show"}
    return [short.get(tuple(call[:3]), call[0]) for call in calls]


@pytest.fixture
def no_retry_delay(monkeypatch):
    monkeypatch.setattr(ncs, "IPERF_RETRY_DELAY_S", 0)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_profile_runs_in_order_and_leaves_the_link_as_it_was(shell, stubs):
    (stubs / "applied.json").write_text(tc_show("tbf-rate"))
    proc, calls = run_script(shell, net_constraints_script(PROFILES["constrained"], LINK, PROBE), stubs)
    assert proc.returncode == 0, proc.stderr
    assert names(calls) == ["tc replace", "tc show", "ping", "iperf3", "tc del", "tc show", "ping", "iperf3"]
    assert " ".join(calls[0]) == APPLY["constrained"][0]
    assert calls[2] == ["ping", "-n", "-q", "-c", "300", "-i", "0.01", "-W", "2", "-I", DEV, "192.168.200.12"]
    assert calls[3] == ["iperf3", "--client", "192.168.200.12", "--port", "5202", "--time", "3", "--json"]
    assert not (stubs / "on").exists()
    read = net_constraints_run({"stdout": proc.stdout, "stderr": proc.stderr, "rc": proc.returncode},
                               PROFILES["constrained"], LINK)
    assert read["error"] == "" and read["applied"] == "rate 50mbit (tbf)"
    assert read["measured"]["during"]["mbps"] == read["measured"]["after"]["mbps"] == 1674.859


@pytest.mark.parametrize("shell", SHELLS)
def test_the_baseline_and_the_link_read_run(shell, stubs):
    proc, calls = run_script(shell, net_constraints_script("baseline", LINK, PROBE), stubs)
    assert proc.returncode == 0 and names(calls) == ["ping", "iperf3"]
    assert net_constraints_run(proc.stdout, "baseline", LINK)["measured"]["baseline"]["received"] == 5
    proc, calls = run_script(shell, net_constraints_script("link", {"interface": "lo"}), stubs)
    assert names(calls)[2:] == ["tc show"]
    link = net_constraints_link(proc.stdout, "lo")
    assert link["error"] == "" and link["mtu"] == int(pathlib.Path("/sys/class/net/lo/mtu").read_text())


@pytest.mark.parametrize("shell", SHELLS)
def test_iperf3_is_run_again_while_the_server_refuses(shell, stubs, no_retry_delay):
    (stubs / "applied.json").write_text(tc_show("netem-loss"))
    (stubs / "iperf").write_text("refused\nrefused\nok\nrefused\nrefused\nrefused\nrefused\n")
    proc, calls = run_script(shell, net_constraints_script(PROFILES["lossy"], LINK, PROBE), stubs)
    assert names(calls) == ["tc replace", "tc show", "ping", "iperf3", "iperf3", "iperf3", "tc del", "tc show", "ping",
                            "iperf3", "iperf3", "iperf3", "iperf3"]
    read = net_constraints_run(proc.stdout, PROFILES["lossy"], LINK)
    assert read["error"] == ""
    assert read["measured"]["during"]["mbps"] == 1674.859
    # 4 runs at most: the last refusal is the figure's error.
    assert read["measured"]["after"] == dict(parse_ping_summary(PING), mbps=None,
                                             iperf_error="unable to connect to server: Connection refused")


@pytest.mark.parametrize("shell", SHELLS)
def test_an_iperf3_failure_is_measured_and_the_script_goes_on(shell, stubs):
    (stubs / "applied.json").write_text(tc_show("netem-delay-jitter"))
    (stubs / "iperf").write_text("fail\n")
    proc, calls = run_script(shell, net_constraints_script(PROFILES["latency"], LINK, PROBE), stubs)
    assert names(calls) == ["tc replace", "tc show", "ping", "iperf3", "tc del", "tc show", "ping", "iperf3"]
    read = net_constraints_run(proc.stdout, PROFILES["latency"], LINK)
    assert read["error"] == "" and not (stubs / "on").exists()
    assert read["measured"]["during"]["iperf_error"] == (
        "iperf3 gave no JSON: iperf3: error - control socket has closed unexpectedly")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_trap_removes_the_constraint_when_the_script_is_stopped_during_iperf3(shell, stubs):
    (stubs / "applied.json").write_text(tc_show("netem-delay-jitter"))
    (stubs / "iperf").write_text("kill\n")
    proc, calls = run_script(shell, net_constraints_script(PROFILES["latency"], LINK, PROBE), stubs)
    assert proc.returncode == 143
    assert names(calls) == ["tc replace", "tc show", "ping", "iperf3", "tc del"]
    assert calls[-1] == ["tc", "qdisc", "del", "dev", DEV, "root"] and not (stubs / "on").exists()
    read = net_constraints_run({"stdout": proc.stdout, "rc": proc.returncode}, PROFILES["latency"], LINK)
    assert read["error"] == (f"interface {DEV}: the script stopped before it removed the constraint (rc 143); "
                             "the script's trap removed the constraint")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_trap_removes_half_a_constraint_when_tc_refuses_the_second_change(shell, stubs):
    (stubs / "fail_replace").write_text("2\n")
    proc, calls = run_script(shell, net_constraints_script(TWO_COMMANDS, LINK, PROBE), stubs)
    assert proc.returncode == 1
    assert names(calls) == ["tc replace", "tc replace", "tc del"] and not (stubs / "on").exists()
    read = net_constraints_run({"stdout": proc.stdout, "rc": proc.returncode}, TWO_COMMANDS, LINK)
    assert read["error"] == (
        f"interface {DEV}: tc qdisc replace dev {DEV} parent 1:1 handle 10: tbf rate 100000000bit burst 62500b "
        "latency 50000us failed (rc 2): Error: Specified qdisc kind is unknown.; the script's trap removed the constraint")


@pytest.mark.parametrize("shell", SHELLS)
def test_nothing_to_delete_is_no_failure_but_other_tc_errors_are(shell, stubs):
    # The constraint vanished before the removal (the stand-in's state is cleared by the ping).
    (stubs / "applied.json").write_text(tc_show("netem-loss"))
    (stubs / "ping").write_text(STUB_PING + 'rm -f "$STUB_DIR/on"\n')
    proc, calls = run_script(shell, net_constraints_script(PROFILES["lossy"], LINK, PROBE), stubs)
    assert proc.returncode == 0 and names(calls)[-4:] == ["tc del", "tc show", "ping", "iperf3"]
    read = net_constraints_run(proc.stdout, PROFILES["lossy"], LINK)
    assert read["error"] == ""
    assert "### remove\n0\nError: Cannot delete qdisc with handle of zero." in proc.stdout
    json.loads(proc.stdout.split("### iperf.after\n0\n")[1])
