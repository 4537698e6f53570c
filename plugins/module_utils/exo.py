# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's EXO state and what the exo role does with it.

The role reads each host once with plain sh (roles/exo/templates/read-state.sh.j2) and
decides here, on the controller:

- ``host_state``: that output as a dict;
- ``backend``: the EXO extra to run (its Linux backends at the pinned ref are
  ``mlx-cpu``, ``mlx-cuda12`` and ``mlx-cuda13``) from gpu_facts' recommended stack;
- ``manifest_problems``: whether a pre-built artifact fits the host and the pin;
- ``identities``: each host's node identity across the play (a cloned image carries
  its source's identity file and must get its own; a shared machine-id is refused);
- ``firewall_spec``: the firewall's data from the plan and the peers' link-local
  addresses (module_utils/exo_firewall.py writes and compares the table);
- ``decision``: what differs from the wanted state - packages, user, directories,
  files, the table, the units - so the role changes only that;
- ``file_set_files``: the files that differ as the file_set module takes them (one
  module call for all of them).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from ansible_collections.aicluster.lab.plugins.module_utils import exo_firewall
from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import IpJsonError, ip_json, link_local_addresses
from ansible_collections.aicluster.lab.plugins.module_utils.os_release import parse_os_release
from ansible_collections.aicluster.lab.plugins.module_utils.rdma import package_family
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections

# EXO's extras on Linux at the pinned ref (pyproject.toml, optional-dependencies) and the
# backend each one reports in /state's nodeBackends (shared/types/backends.py).
EXTRAS = {"mlx-cpu": "MlxCpu", "mlx-cuda12": "MlxCuda", "mlx-cuda13": "MlxCuda"}
ARCHES = {"x86_64", "aarch64"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")
REQUIRED_SECTIONS = ("os_release", "arch", "machine_id", "identity", "user", "paths", "files", "units", "nft", "addrs")


class ExoInputError(InputError):
    """Output that is not the read-state script's, or wanted state the role cannot reach."""


def _fail(msg):
    raise ExoInputError(msg)


# ---------------------------------------------------------------- the host, read once

def _key_values(text):
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def _paths(text):
    """'path|kind|mode|owner|group' lines (stat), or 'path|absent'."""
    found = {}
    for line in (text or "").splitlines():
        parts = line.split("|")
        if len(parts) == 2 and parts[1] == "absent":
            found[parts[0]] = None
        elif len(parts) == 5:
            path, kind, mode, owner, group = parts
            found[path] = {"kind": kind, "mode": mode.zfill(4), "owner": owner, "group": group}
        elif line.strip():
            _fail(f"paths section: cannot read {line!r}")
    return found


def _files(text):
    """sha256sum lines: {path: digest}."""
    found = {}
    for line in (text or "").splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and re.fullmatch(r"[0-9a-f]{64}", words[0]):
            found[words[1].strip().lstrip("*")] = words[0]
    return found


def _units(text):
    """'name enabled active' lines: {name: {enabled, active}}. systemctl is-enabled prints nothing for a
    unit it does not know, so a field may be empty between two spaces."""
    found = {}
    for line in (text or "").splitlines():
        words = line.strip("\r").split(" ")
        if words[0]:
            words += ["", ""]
            found[words[0]] = {"enabled": words[1], "active": words[2]}
    return found


def _packages(text):
    packages = {}
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) >= 2:
            packages[words[0]] = words[1] == "ii"
    return packages


def host_state(text):
    """The output of the role's read-state.sh as a dict."""
    found = sections(text)
    missing = [name for name in REQUIRED_SECTIONS if name not in found]
    if missing:
        _fail(f"the host's state lacks the section(s) {', '.join(missing)}: not the output of the exo role's "
              f"read-state.sh (it starts with {(text or '').strip()[:80]!r})")
    user = found["user"].strip().split(":")
    try:
        addrs = ip_json(found["addrs"], "addrs")
    except IpJsonError as exc:
        raise ExoInputError(str(exc)) from exc
    artifact = found.get("artifact", "").strip()
    try:
        artifact = json.loads(artifact) if artifact else None
    except ValueError:
        artifact = {"unreadable": artifact[:200]}
    tools = {}
    for line in found.get("tools", "").splitlines():
        name, _sep, path = line.partition(" ")
        if name:
            tools[name] = path.strip() or None
    node_zid = found.get("node_zid", "").split()
    return {
        "os_release": parse_os_release(found["os_release"]),
        "arch": found["arch"].strip(),
        "machine_id": found["machine_id"].strip(),
        "identity": _key_values(found["identity"]),
        "node_zid": node_zid[0] if node_zid else None,
        "user": {"name": user[0], "uid": user[2], "gid": user[3], "home": user[5], "shell": user[6]}
        if len(user) >= 7 else None,
        "group": found.get("group", "").strip().split(":")[0] or None,
        "packages": _packages(found.get("packages", "")),
        "tools": tools,
        "paths": _paths(found["paths"]),
        "files": _files(found["files"]),
        "units": _units(found["units"]),
        "nft": found["nft"],
        "addrs": addrs,
        "artifact": artifact,
        "unit_show": _key_values(found.get("unit_show", "")),
    }


# ---------------------------------------------------------------- the backend

def _cuda_major(facts):
    versions = []
    for gpu in facts.get("gpus") or []:
        tool = gpu.get("tool") or {}
        match = re.match(r"(\d+)", str(tool.get("cuda_version") or ""))
        if gpu.get("vendor_id") == "0x10de" and match:
            versions.append(int(match.group(1)))
    return min(versions) if versions else None


def backend(facts, requested="auto"):
    """{extra, backend, devices, reason}: the EXO extra for the host.

    ``requested`` is ``auto`` (from gpu_facts' recommended stack) or an extra by name.
    EXO offers CUDA builds of MLX on Linux (mlx-cuda12, mlx-cuda13) and a CPU one
    (mlx-cpu); nothing for ROCm or oneAPI at the pinned ref, so those hosts run on the CPU.
    ``devices``: the service needs the host's GPU device nodes (no PrivateDevices).
    """
    if requested and requested != "auto":
        if requested not in EXTRAS:
            _fail(f"exo_backend: {requested!r} is not one of auto, {', '.join(sorted(EXTRAS))}")
        return {"extra": requested, "backend": EXTRAS[requested], "devices": requested != "mlx-cpu",
                "reason": f"{requested}, set by exo_backend"}
    if not isinstance(facts, dict) or "recommended_stack" not in facts:
        _fail(f"backend: the facts must be what aicluster.lab.gpu_facts returned, got {facts!r}")
    stack, why = facts["recommended_stack"], facts.get("stack_reason", "")
    if stack == "cuda":
        major = _cuda_major(facts)
        if major is None:
            extra = "mlx-cuda12"
            reason = f"{why}; the driver's CUDA version is not known yet (no nvidia-smi): {extra}"
        elif major >= 13:
            extra, reason = "mlx-cuda13", f"{why}; the driver serves CUDA {major}: mlx-cuda13"
        elif major == 12:
            extra, reason = "mlx-cuda12", f"{why}; the driver serves CUDA 12: mlx-cuda12"
        else:
            return {"extra": "mlx-cpu", "backend": "MlxCpu", "devices": False,
                    "reason": f"{why}; the driver serves CUDA {major} only, EXO's CUDA builds need 12 or 13: "
                              "CPU (mlx-cpu)"}
        return {"extra": extra, "backend": "MlxCuda", "devices": True, "reason": reason}
    if stack in ("rocm", "oneapi"):
        return {"extra": "mlx-cpu", "backend": "MlxCpu", "devices": False,
                "reason": f"{why}; EXO offers no {stack} backend on Linux at the pinned ref: CPU (mlx-cpu)"}
    return {"extra": "mlx-cpu", "backend": "MlxCpu", "devices": False, "reason": f"{why or 'no GPU'}: CPU (mlx-cpu)"}


# ---------------------------------------------------------------- the artifact

MANIFEST_KEYS = ("ref", "extra", "arch", "prefix", "archive", "sha256", "entrypoint", "python")


def manifest_problems(manifest, ref, extra=None, arch=None, prefix=None):
    """Why a pre-built artifact's MANIFEST.json does not fit this host and pin; [] when it does.

    ``extra``, ``arch`` and ``prefix`` None leave the host's side unchecked: the air-gap bundle
    stages an artifact for hosts it does not read, and checks the rest.
    """
    if not isinstance(manifest, dict):
        return [f"MANIFEST.json is not a mapping: {manifest!r}"]
    problems = [f"MANIFEST.json lacks {key}" for key in MANIFEST_KEYS if not manifest.get(key)]
    if problems:
        return problems
    if manifest["ref"] != ref:
        problems.append(f"it was built from {manifest['ref']}, the role pins {ref} (exo_ref)")
    if extra is not None and manifest["extra"] != extra:
        problems.append(f"it holds the {manifest['extra']} extra, this host needs {extra}")
    if arch is not None and manifest["arch"] != arch:
        problems.append(f"it is built for {manifest['arch']}, the host is {arch}")
    if prefix is not None and manifest["prefix"].rstrip("/") != prefix.rstrip("/"):
        problems.append(f"it must be unpacked at {manifest['prefix']} (its venv names that path), "
                        f"exo_install_dir is {prefix}")
    if not re.fullmatch(r"[0-9a-f]{64}", str(manifest["sha256"])):
        problems.append(f"sha256 {manifest['sha256']!r} is not a SHA-256 digest")
    if not str(manifest["python"]).startswith("3.13"):
        problems.append(f"it runs Python {manifest['python']}; EXO needs 3.13")
    if manifest["entrypoint"].startswith("/") or ".." in manifest["entrypoint"].split("/"):
        problems.append(f"entrypoint {manifest['entrypoint']!r} must be a path inside the prefix")
    if "/" in str(manifest["archive"]) or str(manifest["archive"]) in (".", ".."):
        problems.append(f"archive {manifest['archive']!r} must be a file name in the artifact's directory")
    return problems


# ---------------------------------------------------------------- identities, across hosts

def identity_text(identity_id, host, machine_id):
    """The identity file's content (the role writes what the host generated in this form)."""
    return f"id={identity_id}\nhost={host}\nmachine_id={machine_id}\n"


def identities(states, hosts):
    """{host: {action, reason, id}} for ``hosts`` in order, from their state reads ({host: state}).

    A host keeps its identity when the file is whole, names this host and its machine-id,
    and no earlier host keeps the same id; otherwise it gets a new one (a cloned image's
    file names another host or machine). Raises ExoInputError when two hosts share a
    machine-id: identities derived from it (systemd's, networkd's MACs and DHCP DUIDs)
    would clash, and only the image's owner can fix that safely.
    """
    by_machine = {}
    for host in hosts:
        machine = (states[host] or {}).get("machine_id", "")
        if not MACHINE_ID.match(machine or ""):
            _fail(f"host {host}: /etc/machine-id holds {machine!r}, not a machine id; run systemd-machine-id-setup")
        by_machine.setdefault(machine, []).append(host)
    shared = {machine: names for machine, names in by_machine.items() if len(names) > 1}
    if shared:
        _fail("hosts share a machine-id (a cloned image): " + "; ".join(
            f"{', '.join(names)} have {machine}" for machine, names in sorted(shared.items()))
            + ". On each clone: rm /etc/machine-id && systemd-machine-id-setup, then reboot")
    kept, result = {}, {}
    for host in hosts:
        state = states[host]
        ident = state.get("identity") or {}
        value = ident.get("id", "")
        if not ident:
            action, reason = "generate", "no identity yet"
        elif not UUID.match(value):
            action, reason = "generate", f"the identity file holds {value!r}, not a UUID"
        elif ident.get("host") != host:
            action, reason = "generate", f"the identity file was made for {ident.get('host')!r} (a cloned image)"
        elif ident.get("machine_id") != state["machine_id"]:
            action, reason = "generate", (f"the identity file was made on machine {ident.get('machine_id')!r}, "
                                          "this is another (a cloned image)")
        elif value in kept:
            action, reason = "generate", f"{kept[value]} holds the same identity {value}"
        else:
            action, reason = "keep", f"identity {value}, made for {host}"
        if action == "keep":
            kept[value] = host
        result[host] = {"action": action, "reason": reason, "id": value if action == "keep" else None}
    return result


def shared_node_zids(states, hosts):
    """Hosts whose EXO node_zid file (EXO_HOME/node_zid) is the same as another host's."""
    by_digest = {}
    for host in hosts:
        digest = (states[host] or {}).get("node_zid")
        if digest:
            by_digest.setdefault(digest, []).append(host)
    return sorted(host for names in by_digest.values() if len(names) > 1 for host in names)


# ---------------------------------------------------------------- the firewall, from the plan

def cluster_link_local(state, interface):
    """(usable, duplicate) IPv6 link-local addresses of ``interface`` in a state read."""
    return link_local_addresses(state.get("addrs") or []).get(interface, ([], []))


def firewall_spec(plan_hosts, host, states, hosts, ports):
    """The firewall's data for ``host``: its cluster interface, its peers' link-local and cluster
    IPv4 addresses, the cluster subnet for the API.

    Peers are the other hosts of the plan with a cluster network. Their link-local addresses
    come from this run's reads (``states``, for the play's ``hosts``); when a peer was not
    read (outside the play, or --limit), the set admits the whole link-local prefix on the
    cluster interface instead, which ``note`` says.
    """
    entry = (plan_hosts or {}).get(host) or {}
    cluster = entry.get("cluster")
    if not cluster:
        _fail(f"host {host} has no cluster network in the plan: EXO's firewall needs one (set network_profile)")
    peers = [name for name, peer in sorted((plan_hosts or {}).items()) if name != host and (peer or {}).get("cluster")]
    v6, unknown = [], []
    for peer in peers:
        usable = cluster_link_local(states.get(peer) or {}, plan_hosts[peer]["cluster"]["interface"])[0] \
            if peer in hosts and states.get(peer) else []
        if usable:
            v6.extend(usable)
        else:
            unknown.append(peer)
    note = ""
    if unknown:
        v6 = ["fe80::/10"]
        note = (f"link-local address of {', '.join(unknown)} not read in this run: discovery and zenoh admitted from "
                f"any link-local address on {cluster['interface']}")
    v4 = sorted({plan_hosts[peer]["cluster"]["address"] for peer in peers if plan_hosts[peer]["cluster"].get("address")},
                key=ipaddress.ip_address)
    network = (entry.get("network") or {}).get("networks", {}).get(cluster["network"], {})
    subnet = network.get("subnet")
    if not subnet and cluster.get("address"):
        subnet = str(ipaddress.ip_interface(f"{cluster['address']}/{network.get('prefix', 24)}").network)
    return {
        "table": exo_firewall.TABLE,
        "interface": cluster["interface"],
        "discovery_port": int(ports["discovery"]),
        "zenoh_port": int(ports["zenoh"]),
        "api_port": int(ports["api"]),
        "peers_v6": v6,
        "peers_v4": v4,
        "api_sources": [subnet] if subnet else [],
        "note": note,
    }


# ---------------------------------------------------------------- what differs

def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def missing_packages(state, packages_by_family):
    family = package_family(state["os_release"])
    if family is None:
        _fail(f"os-release ID {state['os_release'].get('ID', '?')!r} is not a distribution the exo role has packages "
              f"for ({', '.join(sorted(packages_by_family))}); set exo_packages_by_family")
    wanted = list((packages_by_family or {}).get(family) or [])
    return family, [name for name in wanted if not state["packages"].get(name)]


def decision(state, wanted):
    """What the role changes on the host: only what differs from ``wanted``.

    ``wanted``: user, group, home, root_dirs (root's, 0755), service_dirs (the user's, 0750), files [{path, content,
    owner, group, mode, unit}], packages_by_family, firewall (spec), firewall_unit,
    service_unit, artifact (the given artifact's manifest, or None), identity ({action}).
    """
    family, packages = missing_packages(state, wanted.get("packages_by_family") or {})
    user = state.get("user")
    user_problems = []
    if user is None:
        user_problems.append(f"user {wanted['user']} does not exist")
    elif user["home"] != wanted["home"]:
        user_problems.append(f"user {wanted['user']}'s home is {user['home']}, not {wanted['home']}")
    dirs = []
    wanted_dirs = [{"path": path, "owner": "root", "group": "root", "mode": "0755"} for path in wanted.get("root_dirs") or []]
    wanted_dirs += [{"path": path, "owner": wanted["user"], "group": wanted["group"], "mode": "0750"}
                    for path in wanted.get("service_dirs") or []]
    for item in wanted_dirs:
        have = state["paths"].get(item["path"])
        mode = str(item["mode"]).zfill(4)
        if have is None or have["kind"] != "directory" or have["mode"] != mode or (have["owner"], have["group"]) != (
                item["owner"], item["group"]):
            dirs.append(dict(item, mode=mode, now=have))
    files = []
    for item in wanted.get("files") or []:
        have = state["paths"].get(item["path"])
        digest = state["files"].get(item["path"])
        mode = str(item["mode"]).zfill(4)
        if digest != sha256(item["content"]) or have is None or have["mode"] != mode or (
                have["owner"], have["group"]) != (item["owner"], item["group"]):
            files.append(item["path"])
    changed_units = {item["path"].rsplit("/", 1)[-1] for item in wanted.get("files") or []
                     if item.get("unit") and item["path"] in files}
    try:
        firewall_problems = exo_firewall.differences(exo_firewall.expected(wanted["firewall"]),
                                                     exo_firewall.live(state["nft"]))
    except exo_firewall.FirewallInputError as exc:
        firewall_problems = [str(exc)]
    fw_unit = state["units"].get(wanted["firewall_unit"], {})
    exo_unit = state["units"].get(wanted["service_unit"], {})
    installed, artifact = state.get("artifact"), wanted.get("artifact")
    install = bool(artifact) and (not installed or installed.get("sha256") != artifact.get("sha256"))
    runnable = bool(artifact) or bool(installed and installed.get("sha256"))
    active = exo_unit.get("active") == "active"
    identity = (wanted.get("identity") or {}).get("action", "keep")
    service = {
        "runnable": runnable,
        "enable": runnable and exo_unit.get("enabled") != "enabled",
        "start": runnable and not active,
        "restart": runnable and active and (install or wanted["service_unit"] in changed_units),
    }
    return {
        "family": family,
        "missing_packages": packages,
        "user": user_problems,
        "dirs": dirs,
        "files": files,
        "daemon_reload": bool(changed_units),
        "firewall": firewall_problems,
        "firewall_unit": {"enable": fw_unit.get("enabled") != "enabled", "start": fw_unit.get("active") != "active"},
        "install": install,
        "service": service,
        "identity": identity,
        "changes": bool(packages or user_problems or dirs or files or firewall_problems or install
                        or identity == "generate" or service["enable"] or service["start"] or service["restart"]
                        or fw_unit.get("enabled") != "enabled" or fw_unit.get("active") != "active"),
    }


def file_set_files(files, paths):
    """The wanted ``files`` whose path is in ``paths`` (the decision's), as file_set's entries {path, content, mode}.

    file_set writes root-owned files only: a file wanted with another owner or group is refused here, by name,
    before anything changes (it would be written root's and found different by every run after).
    """
    entries = []
    for item in files or []:
        if item["path"] not in (paths or []):
            continue
        if (item.get("owner", "root"), item.get("group", "root")) != ("root", "root"):
            _fail(f"{item['path']}: owned by {item.get('owner')}:{item.get('group')}, but file_set writes root's files "
                  f"only: write it in the role's raw step instead")
        entries.append({"path": item["path"], "content": item["content"], "mode": str(item["mode"]).zfill(4)})
    return entries
