# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The net_constraints role's scripts: one plain-sh round trip per step, decided on the controller.

A Python module costs about 5 s per call on an emulated guest, a raw command about 0.3 s. So the
role sends the measuring host plain sh, rendered here, and reads what it prints here:

- the link read (``link_script``): the interface's MTU and ``tc -j qdisc show``, before the
  first profile and once more at the end. ``read_link`` judges it with tc_constraint's parser:
  a root qdisc something else made is refused, a netem or tbf left by an earlier run is removed;
- the baseline (``measure_script(None, ...)``): ping, then iperf3;
- one script per profile (``measure_script(profile, ...)``): apply it with ``tc qdisc replace``
  (the argv tc_constraint.plan_present builds for the net_constraint module, from the kernel's
  default root), show the qdiscs, ping and iperf3 "during", delete the root qdisc, show the
  qdiscs again, ping and iperf3 "after". A trap on EXIT deletes the root qdisc whatever stops
  the script once the first change ran: a constraint is never left on the link.

Every step prints a section (script_output): ``### <name>``, its exit code on the first line, then
its output (stdout and stderr). ``read_run`` turns a run into the phases the verdicts take
(net_constraints_verdict: ping figures with ``mbps`` and ``iperf_error``), and an error, in the
net_constraint module's words, when tc refused a change or the qdiscs are not what it asked for.
"""

from __future__ import annotations

import shlex

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.iperf3 import iperf3_run
from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections
from ansible_collections.aicluster.lab.plugins.module_utils.tc_constraint import (
    DEFAULT_MTU,
    ConstraintError,
    describe,
    foreign_msg,
    foreign_root,
    is_default,
    matches,
    parse_qdiscs,
    plan_absent,
    plan_present,
    predict,
    remove_args,
    summarize,
    validate,
)

# What a profile's keys are called by the net_constraint module.
VALUES = ("delay_ms", "jitter_ms", "loss_percent", "rate_mbit")
# The kernel's answers (extack) to deleting a root qdisc that is the default one: nothing to delete.
NOTHING_TO_DELETE = ("Cannot delete qdisc with handle of zero", "Cannot find specified qdisc on specified device")
# iperf3 is tried again while the server on the peer refuses (it may still be starting):
# 4 runs in all, 1 s apart, as the role's raw task did with until/retries before.
IPERF_RUNS = 4
IPERF_RETRY_DELAY_S = 1
# A bound on each iperf3 run, only for a client that hangs (a server gone mid-test): the test
# plus 150 s, more than Linux takes to give up a TCP connect (127 s, 6 SYN retries), so it
# cuts nothing iperf3 would finish by itself. timeout sends TERM (iperf3 then prints its JSON
# with the error), KILL 5 s later.
IPERF_GRACE_S = 150
# Each measurement's settings (the role's defaults).
PROBE_KEYS = ("peer", "ping_count", "ping_interval_ms", "iperf_s", "iperf_port")
# The state a profile is applied to: the kernel's default root. The role removes a constraint an
# earlier run left before the baseline, and each script deletes its own before it ends.
DEFAULT_STATE = {"root": None, "child": None, "others": []}


class ScriptError(InputError):
    """A profile, link or probe the scripts cannot be rendered or read for."""


def _q(argv):
    return " ".join(shlex.quote(str(word)) for word in argv)


def _interface(link):
    if not isinstance(link, dict) or not link.get("interface"):
        raise ScriptError(f"the link must be the net_constraints_link of the interface, got {link!r}")
    try:
        validate({"interface": link["interface"], "state": "absent"})
    except ConstraintError as exc:
        raise ScriptError(exc.msg) from None
    return link["interface"]


def _mtu(link):
    mtu = link.get("mtu")
    return mtu if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu > 0 else DEFAULT_MTU


def wanted_of(profile, interface):
    """The net_constraint module's wanted constraint for a profile (its validation, its errors)."""
    if not isinstance(profile, dict) or "name" not in profile:
        raise ScriptError(f"the profile must be a constraint profile with a name, got {profile!r}")
    try:
        return validate({"interface": interface, "state": "present", **{key: profile.get(key) for key in VALUES}})
    except ConstraintError as exc:
        raise ScriptError(f"constraint profile {profile['name']}: {exc.msg}") from None


def commands_of(profile, link):
    """The tc argv lists that apply ``profile`` on the link's interface, from the kernel's default root."""
    interface = _interface(link)
    return plan_present(interface, DEFAULT_STATE, wanted_of(profile, interface), _mtu(link))


def _probe(probe):
    if not isinstance(probe, dict):
        raise ScriptError(f"the probe must be a dict of {', '.join(PROBE_KEYS)}, got {probe!r}")
    missing = [key for key in PROBE_KEYS if probe.get(key) in (None, "")]
    if missing:
        raise ScriptError(f"the probe lacks {', '.join(missing)}")
    values = {"peer": str(probe["peer"])}
    for key in PROBE_KEYS[1:]:
        try:
            values[key] = int(probe[key])
        except (TypeError, ValueError):
            raise ScriptError(f"the probe's {key}: {probe[key]!r} is not a whole number") from None
        if values[key] <= 0:
            raise ScriptError(f"the probe's {key}: {values[key]} must be > 0")
    if values["peer"].startswith("-"):
        raise ScriptError(f"the probe's peer: {values['peer']!r} is not an address")
    return values


def ping_args(interface, probe):
    return ["ping", "-n", "-q", "-c", probe["ping_count"], "-i", "%g" % (probe["ping_interval_ms"] / 1000), "-W", 2,
            "-I", interface, probe["peer"]]


def iperf_args(probe):
    return ["timeout", "-k", 5, probe["iperf_s"] + IPERF_GRACE_S, "iperf3", "--client", probe["peer"],
            "--port", probe["iperf_port"], "--time", probe["iperf_s"], "--json"]


def link_script(interface):
    """The link read: ``### mtu`` and ``### qdisc`` (exit code first, then the output)."""
    interface = _interface({"interface": interface})
    return (_FUNCTIONS_RUN
            + "run mtu cat %s\n" % shlex.quote(f"/sys/class/net/{interface}/mtu")
            + "run qdisc %s\n" % _q(["tc", "-j", "qdisc", "show", "dev", interface]))


_FUNCTIONS_RUN = """\
run() {  # run SECTION ARGV...: the command's exit code, then its output (stdout and stderr)
  section=$1; shift
  out=$("$@" 2>&1)
  rc=$?
  printf '### %s\\n%s\\n%s\\n' "$section" "$rc" "$out"
  return "$rc"
}
"""

_FUNCTION_IPERF = """\
iperf() {  # iperf SECTION: iperf3 -J to the peer. It exits 0 even when it cannot connect (the JSON
  # holds the error); "Connection refused" (the server on the peer still starting) is tried again.
  n=1
  while :; do
    out=$(%(iperf)s 2>&1)
    rc=$?
    case $out in
      *'Connection refused'*) if [ "$n" -lt %(runs)d ]; then n=$((n + 1)); sleep %(delay)s; continue; fi ;;
    esac
    break
  done
  printf '### %%s\\n%%s\\n%%s\\n' "$1" "$rc" "$out"
}
"""

_FUNCTIONS_CHANGE = """\
remove() {  # remove SECTION: delete the root qdisc, the kernel's default comes back. Deleting the
  # default root is "nothing to delete", no failure. tc runs before anything is printed.
  out=$(%(remove)s 2>&1)
  rc=$?
  case $out in
    %(nothing)s) rc=0 ;;
  esac
  printf '### %%s\\n%%s\\n%%s\\n' "$1" "$rc" "$out"
  return "$rc"
}
cleanup() {  # on EXIT: the constraint goes, whatever stopped the script
  status=$?
  trap '' HUP INT TERM PIPE
  if [ -n "$applied" ]; then
    applied=
    remove cleanup
  fi
  exit "$status"
}
applied=
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
"""


def measure_script(profile, link, probe):
    """The script of one profile (``profile`` a dict with a name), or of the baseline (``profile`` None)."""
    interface = _interface(link)
    probe = _probe(probe)
    ping = _q(ping_args(interface, probe))
    functions = _FUNCTIONS_RUN + _FUNCTION_IPERF % {"iperf": _q(iperf_args(probe)), "runs": IPERF_RUNS,
                                                    "delay": IPERF_RETRY_DELAY_S}
    if profile is None:
        return ("# aicluster.lab net_constraints: the baseline on %s, measured to %s. Plain sh in one round\n"
                "# trip, rendered by the net_constraints_script filter, read by net_constraints_run.\n"
                % (interface, probe["peer"])
                + functions
                + f"run ping.baseline {ping}\n"
                + "iperf iperf.baseline\n")
    commands = commands_of(profile, link)
    show = _q(["tc", "-j", "qdisc", "show", "dev", interface])
    lines = ["# aicluster.lab net_constraints: profile %s on %s, measured to %s: apply, measure, remove,"
             % (" ".join(str(profile["name"]).split()), interface, probe["peer"]),
             "# measure again. Plain sh in one round trip, rendered by the net_constraints_script filter"
             " (tc argv",
             "# from module_utils/tc_constraint.py), read by net_constraints_run. Once the first change runs,",
             "# the trap on EXIT deletes the root qdisc whatever stops the script."]
    body = [functions.rstrip("\n"),
            (_FUNCTIONS_CHANGE % {"remove": _q(remove_args(interface)),
                                  "nothing": "|".join("*%s*" % shlex.quote(text) for text in NOTHING_TO_DELETE)}
             ).rstrip("\n"),
            "applied=1"]
    body += ["run apply.%d %s || exit 1" % (index, _q(argv)) for index, argv in enumerate(commands, 1)]
    body += [f"run qdisc.during {show}", f"run ping.during {ping}", "iperf iperf.during",
             "remove remove || exit 1", "applied=",
             f"run qdisc.after {show}", f"run ping.after {ping}", "iperf iperf.after"]
    return "\n".join(lines + body) + "\n"


# ---------------------------------------------------------------- reading the output

def _text(result):
    """stdout, stderr and rc of a registered raw result, or a plain string."""
    if isinstance(result, dict):
        if "stdout" not in result:
            raise ScriptError(f"the input must be a registered raw result with stdout, got keys {sorted(result)}")
        return result.get("stdout") or "", (result.get("stderr") or "").strip(), result.get("rc")
    if isinstance(result, str):
        return result, "", None
    raise ScriptError(f"the input must be a registered raw result or its stdout, got {type(result).__name__}")


def _step(found, name):
    """(rc, output) of a section, or None when the script never got there."""
    if name not in found:
        return None
    lines = found[name].split("\n")
    try:
        rc = int(lines[0].strip())
    except ValueError:
        return None
    return rc, "\n".join(lines[1:]).strip()


def _iperf(step):
    """{error, figures} of an iperf3 section; its JSON read apart from lines around it (stderr)."""
    if step is None:
        return {"error": "not measured: the script stopped before", "figures": {}}
    rc, output = step
    lines = output.split("\n")
    opening = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    closing = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("}")), None)
    if opening is None or closing is None or closing < opening:
        return iperf3_run(output, "", rc)
    rest = "\n".join(lines[:opening] + lines[closing + 1:])
    return iperf3_run("\n".join(lines[opening:closing + 1]), rest, rc)


def phase_figures(found, phase):
    """One phase as the verdicts take it: the ping figures with mbps and iperf_error."""
    ping = _step(found, f"ping.{phase}")
    figures = parse_ping_summary(ping[1]) if ping else {}
    run = _iperf(_step(found, f"iperf.{phase}"))
    figures.update(mbps=run["figures"].get("received_mbps"), iperf_error=run["error"])
    return figures


def _stopped(interface, what, stderr, rc):
    return (f"interface {interface}: the script stopped before {what}"
            + (f" (rc {rc})" if rc not in (None, 0) else "") + (f": {stderr}" if stderr else ""))


def _qdiscs(interface, step):
    """The parsed qdiscs of a ``tc -j qdisc show`` section, or an error."""
    if step is None:
        return None, None
    rc, output = step
    if rc != 0:
        return None, f"interface {interface}: tc -j qdisc show failed (rc {rc}): {output}"
    try:
        return parse_qdiscs(output), None
    except ConstraintError as exc:
        return None, f"interface {interface}: {exc.msg}"


def read_run(result, profile, link):
    """{measured, applied, commands, error} of one run of measure_script.

    ``measured`` holds the phases the script reached: baseline, or during and after, each as
    phase_figures. ``error`` is '' or what went wrong with the constraint itself, in the
    net_constraint module's words: a tc change that failed with tc's message, qdiscs that are
    not what the commands asked for, a root qdisc still there after its deletion, a script that
    stopped before it was done (and whether its trap removed the constraint).
    """
    text, stderr, rc = _text(result)
    found = sections(text)
    if profile is None:
        return {"measured": {"baseline": phase_figures(found, "baseline")}, "applied": "", "commands": [], "error": ""}
    interface = _interface(link)
    wanted, commands = wanted_of(profile, interface), commands_of(profile, link)
    errors = []
    for index, argv in enumerate(commands, 1):
        step = _step(found, f"apply.{index}")
        if step is None:
            errors.append(_stopped(interface, f"{' '.join(argv)} ran", stderr, rc))
            break
        if step[0] != 0:
            errors.append(f"interface {interface}: {' '.join(argv)} failed (rc {step[0]}): {step[1]}")
            break
    applied = ""
    if not errors:
        during, problem = _qdiscs(interface, _step(found, "qdisc.during"))
        if problem:
            errors.append(problem)
        elif during is not None:
            applied = describe(summarize(during))
            if not matches(during, wanted, _mtu(link)):
                errors.append(f"interface {interface}: after {len(commands)} tc command(s) tc shows {applied}, "
                              f"not {describe(predict(DEFAULT_STATE, wanted))}")
        removal = _step(found, "remove")
        if removal is None:
            errors.append(_stopped(interface, "it removed the constraint", stderr, rc))
        elif removal[0] != 0:
            errors.append(f"interface {interface}: {' '.join(remove_args(interface))} failed (rc {removal[0]}): "
                          f"{removal[1]}")
        else:
            after, problem = _qdiscs(interface, _step(found, "qdisc.after"))
            if problem:
                errors.append(problem)
            elif after is not None and not is_default(after["root"]):
                errors.append(f"interface {interface}: the root qdisc is still {after['root']['kind']} after deleting it")
            elif "iperf.after" not in found:
                errors.append(_stopped(interface, "it measured again after the removal", stderr, rc))
    cleanup = _step(found, "cleanup")
    if cleanup is not None:
        if cleanup[0] != 0:
            errors.append(f"the script's trap could not remove the constraint: {' '.join(remove_args(interface))} "
                          f"failed (rc {cleanup[0]}): {cleanup[1]}")
        elif any(text in cleanup[1] for text in NOTHING_TO_DELETE):
            errors.append("the script's trap found no constraint left to remove")
        else:
            errors.append("the script's trap removed the constraint")
    measured = {phase: phase_figures(found, phase) for phase in ("during", "after")}
    return {"measured": measured, "applied": applied, "commands": commands, "error": "; ".join(errors)}


def read_link(result, interface):
    """{interface, mtu, constraint, error, remove} of the link read (link_script's output).

    ``error`` says why no profile may be applied: the interface is missing, tc could not be read,
    or its root qdisc is one something else made (left as it is). ``remove`` is the shell command
    that deletes a netem or tbf root an earlier run left, '' when there is none (or it is foreign).
    """
    interface = _interface({"interface": interface})
    text, stderr, rc = _text(result)
    found = sections(text)
    link = {"interface": interface, "mtu": None, "constraint": "", "error": "", "remove": ""}
    mtu = _step(found, "mtu")
    if mtu is None:
        link["error"] = _stopped(interface, "it read the interface", stderr, rc)
        return link
    if mtu[0] != 0:
        link["error"] = (f"interface: '{interface}' does not exist on this host" if "No such file" in mtu[1]
                         else f"interface {interface}: cannot read its MTU (rc {mtu[0]}): {mtu[1]}")
        return link
    try:
        link["mtu"] = int(mtu[1])
    except ValueError:
        link["error"] = f"interface {interface}: its MTU reads {mtu[1]!r}, not a number"
        return link
    current, problem = _qdiscs(interface, _step(found, "qdisc"))
    if problem or current is None:
        link["error"] = problem or _stopped(interface, "it read the qdiscs", stderr, rc)
        return link
    link["constraint"] = describe(summarize(current))
    root = foreign_root(current)
    if root is not None:
        link["error"] = (foreign_msg(interface, root) + "; the role leaves it as it is and applies no profile "
                         "(aicluster.lab.net_constraint with state: absent and force: true removes it)")
    else:
        link["remove"] = "\n".join(_q(argv) for argv in plan_absent(interface, current))
    return link
