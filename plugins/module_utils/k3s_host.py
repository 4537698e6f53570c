# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the k3s role does to a host, decided on the controller.

The role reads each host once with plain sh (roles/k3s/templates/read-state.sh.j2: the
machine, the k3s binary and its version, every file the role manages - mode, owner and
sha256, never the token's content -, directories, kernel modules, sysctls, units, the
token files' presence) and everything below is decided here:

- ``members``: the servers (the first initialises embedded etcd) and the agents, from
  the inventory's k3s groups, or the lab's group when there are none;
- ``artifacts``: an air-gap directory of k3s's release files, every file used verified
  against the release's ``sha256sum-<arch>.txt`` before any host is touched;
- ``host_files``: every file the role writes on a host (config.yaml, drop-ins, the
  unit, modules-load.d, sysctl.d) with its content and mode;
- ``host_state``: the read as a dict;
- ``decide``: what differs - files to write or remove, directories, modules, sysctls,
  users, the binary, the images, the links - and why the service must (re)start.

A host without a k3s binary and no way to get one (no artifact directory and
``k3s_install_from_release`` false: the lab's nodes have no internet) converges all the
rest; its service is left stopped and every live check is skipped with that reason.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_config, k3s_flags
from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError


class K3sHostError(InputError):
    """Input the role cannot act on: a group, an artifact directory, a drop-in, a read."""


# uname -m -> k3s's name for the architecture, and the suffix of its binary's name.
ARCHES = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "-arm64"),
          "arm64": ("arm64", "-arm64"), "armv7l": ("arm", "-armhf"), "armv7": ("arm", "-armhf")}
# The images tarballs k3s imports from its images directory at start, most compact first.
IMAGE_SUFFIXES = (".tar.zst", ".tar.gz", ".tar")
BINARY = "/usr/local/bin/k3s"
IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"
CONFIG_DIR = "/etc/rancher/k3s"
CONFIG_FILE = CONFIG_DIR + "/config.yaml"
DROPIN_DIR = CONFIG_DIR + "/config.yaml.d"
UNIT_DIR = "/etc/systemd/system"
UNITS = {"server": "k3s.service", "agent": "k3s-agent.service"}
# The token k3s itself keeps on a server (K10<ca-hash>::server:<secret>); a cluster made
# before the role, without its token file, is joined with this one.
K3S_SERVER_TOKEN = "/var/lib/rancher/k3s/server/token"
# The tools the k3s binary also is when called by these names (install.sh links them too).
LINKS = ("kubectl", "crictl", "ctr")
# First line of every file the role writes: a drop-in carrying it is the role's, and one
# that is no longer wanted is removed; others' drop-ins (the gpu role's) are left alone.
MARK = "# Written by the aicluster.lab k3s role"
_SECTION = re.compile(r"^### (\S+)\s*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"\bk3s version (v\S+)")
_DROPIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------
# members


def _group(groups, name):
    hosts = groups.get(name) if name else None
    return [str(host) for host in hosts] if hosts else []


def members(groups, servers_group="k3s_servers", agents_group="k3s_agents", lab_group="lab_nodes"):
    """{servers, agents, source}: the inventory's k3s groups, else the lab's group.

    With a non-empty servers group, its hosts are the servers (the first initialises
    embedded etcd) and the agents group's (possibly none) the agents. Without one, the
    lab's group stands in: its first host is the one server and the others are agents
    (one server needs no quorum; three servers on a two-node lab cannot be). An agents
    group without a servers group is refused: who its agents would join is not said.
    """
    if not isinstance(groups, Mapping):
        raise K3sHostError(f"k3s members: groups must be Ansible's groups mapping, got {_show(groups)}")
    servers, agents = _group(groups, servers_group), _group(groups, agents_group)
    if servers:
        both = [host for host in servers if host in agents]
        if both:
            raise K3sHostError(f"k3s members: {', '.join(both)} in both {servers_group} and {agents_group}; "
                               f"a host is a server or an agent")
        return {"servers": servers, "agents": agents, "source": f"groups {servers_group} and {agents_group}"}
    if agents:
        raise K3sHostError(f"k3s members: group {agents_group} ({', '.join(agents)}) has no servers to join: "
                           f"group {servers_group} is empty or missing")
    lab = _group(groups, lab_group)
    if not lab:
        raise K3sHostError(f"k3s members: no group {servers_group}, and no group {lab_group} to take the servers "
                           f"and agents from; name the servers in group {servers_group}")
    return {"servers": lab[:1], "agents": lab[1:],
            "source": f"group {lab_group} (no group {servers_group}): its first host is the server"}


# ---------------------------------------------------------------------------------------
# artifacts


def arch_of(machine):
    """k3s's architecture name for ``uname -m``."""
    try:
        return ARCHES[str(machine).strip()][0]
    except KeyError:
        raise K3sHostError(f"k3s: machine {_show(machine)} has no k3s release "
                           f"(known: {', '.join(sorted(ARCHES))})") from None


def release_names(arch):
    """{binary, sums, images: [...]} as k3s's release names its files for ``arch``."""
    suffix = next((sfx for name, sfx in ARCHES.values() if name == arch), None)
    if suffix is None:
        raise K3sHostError(f"k3s: no release for architecture {_show(arch)}")
    return {"binary": "k3s" + suffix, "sums": f"sha256sum-{arch}.txt",
            "images": [f"k3s-airgap-images-{arch}{ext}" for ext in IMAGE_SUFFIXES]}


def parse_sums(text, source="sha256sum file"):
    """{file name: sha256} of a ``sha256sum`` file (``<hash>  <name>`` or ``<hash> *<name>``)."""
    sums = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not _SHA256.match(parts[0].lower()):
            raise K3sHostError(f"k3s artifacts: {source} line {number}: {_show(line)} is not '<sha256>  <file>'")
        sums[os.path.basename(parts[1].strip().lstrip("*"))] = parts[0].lower()
    return sums


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def artifacts(directory, arches=None, images=True):
    """{arch: {binary: {name, path, sha256}, images: {...} or None}} from an air-gap directory.

    ``arches``: the architectures wanted, or None for every one the directory has sums for.

    Every file used is hashed and compared with the release's sha256sum-<arch>.txt: a
    missing sums file or binary, a file the sums file does not list, or a mismatch stops
    the run naming the file and both sums. The images tarball is the first of .tar.zst,
    .tar.gz and .tar present; with ``images`` false none is used.
    """
    if not isinstance(directory, str) or not directory:
        raise K3sHostError(f"k3s artifacts: k3s_artifact_dir must name a directory, got {_show(directory)}")
    if not os.path.isdir(directory):
        raise K3sHostError(f"k3s artifacts: {directory} is not a directory on the controller")
    if arches is None:
        # Every architecture the directory has the release's sums file of.
        known = {name for name, _suffix in ARCHES.values()}
        arches = sorted(name[len("sha256sum-"):-len(".txt")] for name in os.listdir(directory)
                        if name.startswith("sha256sum-") and name.endswith(".txt")
                        and name[len("sha256sum-"):-len(".txt")] in known)
        if not arches:
            raise K3sHostError(f"k3s artifacts: {directory} has no sha256sum-<arch>.txt (the release's checksums, "
                               f"e.g. sha256sum-amd64.txt); nothing from it is installed unverified")
    found = {}
    for arch in dict.fromkeys(arches):
        names = release_names(arch)
        sums_path = os.path.join(directory, names["sums"])
        if not os.path.isfile(sums_path):
            raise K3sHostError(f"k3s artifacts: {directory} has no {names['sums']} (the release's checksums for "
                               f"{arch}); nothing from it is installed unverified")
        with open(sums_path, encoding="utf-8") as handle:
            sums = parse_sums(handle.read(), sums_path)
        entry = {"binary": _verified(directory, names["binary"], sums, names["sums"]), "images": None}
        if images:
            present = [name for name in names["images"] if os.path.isfile(os.path.join(directory, name))]
            if present:
                entry["images"] = _verified(directory, present[0], sums, names["sums"])
        found[arch] = entry
    return found


def _verified(directory, name, sums, sums_name):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise K3sHostError(f"k3s artifacts: {directory} has no {name}")
    if name not in sums:
        raise K3sHostError(f"k3s artifacts: {sums_name} does not list {name}; it cannot be verified")
    have = sha256_file(path)
    if have != sums[name]:
        raise K3sHostError(f"k3s artifacts: {path}: sha256 {have} is not {sums[name]} from {sums_name}; "
                           f"the file is damaged or from another release - nothing is installed")
    return {"name": name, "path": path, "sha256": have}


# ---------------------------------------------------------------------------------------
# files


def dropins(host, role, value):
    """{file name: content dict} of ``k3s_config_dropins``, each key checked like config.yaml's.

    Keys may end in ``+`` (k3s appends the value to a list flag). Refused: a secret,
    a key the collection derives from the plan, and a value every server must share
    (set those in k3s_cluster_config, where they are checked across servers).
    """
    if value is None:
        return {}
    field = "k3s_config_dropins"
    if not isinstance(value, Mapping):
        raise K3sHostError(f"k3s config, host {host} ({role}): {field}: {_show(value)} must be a mapping of "
                           f"drop-in name to flags")
    files = {}
    for name, flags in value.items():
        where = f"k3s config, host {host} ({role}): {field}.{name}"
        if not isinstance(name, str) or not _DROPIN_NAME.match(name) or name.endswith(".yaml"):
            raise K3sHostError(f"{where}: a drop-in's name is letters, digits, '.', '_' and '-' (the role adds .yaml)")
        if not isinstance(flags, Mapping) or not flags:
            raise K3sHostError(f"{where}: {_show(flags)} must be a mapping of k3s flags to values")
        for key, item in flags.items():
            flag = key[:-1] if isinstance(key, str) and key.endswith("+") else key
            if flag in k3s_config.SECRET_KEYS:
                raise K3sHostError(f"{where}.{key}: a secret never goes into a config file; the role writes it to "
                                   f"a 0600 file named by token-file")
            if flag in k3s_config.DERIVED:
                raise K3sHostError(f"{where}.{key}: {_show(item)}: set from {k3s_config.DERIVED[flag]}, not here")
            if flag in k3s_flags.MUST_AGREE:
                raise K3sHostError(f"{where}.{key}: {_show(item)}: every server must share it; set it in "
                                   f"k3s_cluster_config, where it is checked across servers")
            try:
                k3s_config.check_value(host, role, flag, item)
            except k3s_config.K3sConfigError as exc:
                raise K3sHostError(f"{exc} (in {field}.{name})") from None
        files[f"{name}.yaml"] = dict(flags)
    return files


def yaml_text(data, header):
    """A config file's text: the header comment, then the flags one per line, in order."""
    import yaml  # pylint: disable=import-outside-toplevel  # controller-side only

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper, items):
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=False)

    _Dumper.add_representer(list, _list)
    body = yaml.dump(dict(data), Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                     width=1000, indent=2)
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in header) + body


def host_files(host, role, config, dropin_value=None, unit_text="", modules=(), sysctls=None):
    """[{path, content, mode, restart}] the role writes on ``host``: what k3s reads, then the kernel's settings.

    ``restart`` marks the files whose change the running service must be restarted for.
    """
    if role not in UNITS:
        raise K3sHostError(f"k3s: role {_show(role)} is neither server nor agent")
    header = [MARK[2:] + f" for {host} ({role}); a change here is undone by its next run.",
              f"Checked against the flags of k3s {k3s_flags.K3S_VERSION} before it was written (docs/k3s.md)."]
    files = [{"path": CONFIG_FILE, "content": yaml_text(config, header), "mode": "0600", "restart": True}]
    for name, flags in dropins(host, role, dropin_value).items():
        files.append({"path": f"{DROPIN_DIR}/{name}", "content": yaml_text(flags, header), "mode": "0600",
                      "restart": True})
    files.append({"path": f"{UNIT_DIR}/{UNITS[role]}", "content": unit_text, "mode": "0644", "restart": True})
    if modules:
        files.append({"path": "/etc/modules-load.d/aicluster-k3s.conf",
                      "content": f"{MARK}: the kernel modules k3s needs, loaded at every boot.\n"
                                 + "".join(f"{name}\n" for name in modules),
                      "mode": "0644", "restart": False})
    if sysctls:
        files.append({"path": "/etc/sysctl.d/90-aicluster-k3s.conf",
                      "content": f"{MARK}: the kernel settings k3s needs, set at every boot.\n"
                                 + "".join(f"{key} = {value}\n" for key, value in sysctls.items()),
                      "mode": "0644", "restart": False})
    return files


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def firewall_rules(role, first_config):
    """{ports, sources}: what k3s's documentation says a node of ``role`` must accept.

    Ports: the API (6443/tcp) and embedded etcd (2379-2380/tcp) on servers, the kubelet
    (10250/tcp) everywhere, flannel's backend (vxlan 8472/udp, wireguard-native
    51820-51821/udp; host-gw and none use none). Sources: the pod and service ranges,
    trusted, as k3s advises for firewalld and ufw. ``first_config`` is the first server's
    config, which holds the cluster-wide values an agent's does not.
    """
    ports = []
    if role == "server":
        ports.append("6443/tcp")
        if "datastore-endpoint" not in first_config:
            ports.append("2379-2380/tcp")
    ports.append("10250/tcp")
    ports += {"vxlan": ["8472/udp"], "wireguard-native": ["51820/udp", "51821/udp"]}.get(
        first_config.get("flannel-backend", "vxlan"), [])
    sources = []
    for key in ("cluster-cidr", "service-cidr"):
        value = first_config.get(key)
        if value:
            sources += [part.strip() for part in (value if isinstance(value, list) else [value])
                        for part in str(part).split(",") if part.strip()]
    return {"ports": ports, "sources": sources}


# ---------------------------------------------------------------------------------------
# the host's state


def sections(text):
    """{name: [lines]} of output split at '### <name>' lines."""
    found, name = {}, None
    for line in (text or "").splitlines():
        match = _SECTION.match(line)
        if match:
            name = match.group(1)
            found.setdefault(name, [])
        elif name is not None:
            found[name].append(line)
    return found


def _pairs(lines, sep="|"):
    return [line.split(sep) for line in lines if line.strip()]


def host_state(text):
    """The output of read-state.sh.j2 as a dict.

    {machine, binary: {sha256, version} or None, files: {path: {mode, owner, sha256} or None},
    dropins: {name: first line}, dirs: {path: bool}, modules: {name: bool},
    sysctls: {key: value or None}, units: {unit: {enabled, active}}, token_files: {path: {mode, owner, size}
    or None}, users: {name: bool}, links: {name: target, 'file' or 'missing'}, images: {name: sha256 or None}}
    """
    found = sections(text)
    for name in ("machine", "binary", "files", "dirs", "modules", "sysctls", "units", "tokens"):
        if name not in found:
            raise K3sHostError(f"k3s: the host's state read has no '### {name}' section; got sections "
                               f"{', '.join(found) or 'none'} (the read did not run to its end)")
    machine = next((line.strip() for line in found["machine"] if line.strip()), "")
    binary = None
    lines = [line.strip() for line in found["binary"] if line.strip()]
    if lines and lines[0] != "missing":
        version = _VERSION.search(" ".join(lines[1:]))
        binary = {"sha256": lines[0].split()[0], "version": version.group(1) if version else None,
                  "version_output": " ".join(lines[1:])[:200]}
    files = {}
    for parts in _pairs(found["files"]):
        files[parts[0]] = None if parts[1:] == ["missing"] else {"mode": parts[1], "owner": parts[2],
                                                                 "sha256": parts[3]}
    tokens = {}
    for parts in _pairs(found["tokens"]):
        tokens[parts[0]] = None if parts[1:] == ["missing"] else {"mode": parts[1], "owner": parts[2],
                                                                  "size": int(parts[3])}
    units = {}
    for parts in _pairs(found["units"], None):
        units[parts[0]] = {"enabled": parts[1] if len(parts) > 1 else "", "active": parts[2] if len(parts) > 2 else ""}
    return {
        "machine": machine,
        "binary": binary,
        "files": files,
        "dropins": {parts[0]: "|".join(parts[1:]) for parts in _pairs(found.get("dropins", []))},
        "dirs": {parts[0]: parts[1] == "present" for parts in _pairs(found["dirs"])},
        "modules": {parts[0]: parts[1] == "loaded" for parts in _pairs(found["modules"])},
        "sysctls": {parts[0]: (None if parts[1] == "missing" else parts[1]) for parts in _pairs(found["sysctls"])},
        "units": units,
        "token_files": tokens,
        "users": {parts[0]: parts[1] == "present" for parts in _pairs(found.get("users", []))},
        "links": {parts[0]: parts[1] for parts in _pairs(found.get("links", []))},
        "images": {parts[0]: (None if parts[1] == "missing" else parts[1]) for parts in _pairs(found.get("images", []))},
        "firewall": _firewall(found.get("firewall", [])),
    }


def _firewall(lines):
    """{kind: firewalld | ufw | none, ports, sources} from the read's firewall section."""
    found = {"kind": "none", "ports": [], "sources": []}
    for line in lines:
        word, _sep, rest = line.strip().partition(" ")
        if word == "kind":
            found["kind"] = rest.strip() or "none"
        elif word == "ports":
            found["ports"] += rest.split()
        elif word == "sources":
            found["sources"] += rest.split()
        elif word == "rule":
            # ufw's own words for a rule it holds: "allow 6443/tcp", "allow from 10.42.0.0/16".
            parts = rest.split()
            if parts[:2] == ["allow", "from"] and len(parts) == 3:
                found["sources"].append(parts[2])
            elif parts[:1] == ["allow"] and len(parts) == 2:
                found["ports"].append(parts[1].replace(":", "-"))
    return found


# ---------------------------------------------------------------------------------------
# the decision


def _file_differs(have, want):
    if have is None:
        return "missing"
    reasons = []
    if have["sha256"] != sha256_text(want["content"]):
        reasons.append("content")
    if have["mode"].lstrip("0") != want["mode"].lstrip("0"):
        reasons.append(f"mode {have['mode']}")
    if have["owner"] != "root:root":
        reasons.append(f"owner {have['owner']}")
    return ", ".join(reasons)


def binary_source(artifact_dir, from_release):
    """'artifact', 'release' or 'none', and the reason a host with no binary gets none."""
    if artifact_dir:
        return "artifact", ""
    if from_release:
        return "release", ""
    return "none", ("no k3s binary to install: k3s_artifact_dir is empty (AICLUSTER_K3S_ARTIFACTS is unset) and "
                    "k3s_install_from_release is false (the lab's nodes have no internet)")


def decide(state, wanted):
    """What the role changes on a host, and why.

    ``wanted``: {role, files (host_files), dirs, modules, sysctls, users, firewall
    (firewall_rules), version, artifact_dir, from_release, artifact ({binary, images} of
    the host's arch, or None)}.
    Returns {role, unit, other_unit, arch, files, remove, dirs, modules, sysctls, users, firewall,
    binary: {action, reason}, images: {action, name, path, sha256}, links, live, live_reason,
    service: {enabled, active}, restart, pending}. ``live`` says the host has or gets a
    binary, so its service runs; otherwise ``live_reason`` says why not.
    """
    role = wanted["role"]
    unit, other = UNITS[role], UNITS["agent" if role == "server" else "server"]
    decision = {"role": role, "unit": unit, "other_unit": other, "arch": None, "files": [], "remove": [],
                "dirs": [], "modules": [], "sysctls": False, "users": [], "links": [], "restart": [], "pending": [],
                "firewall": {"kind": "none", "ports": [], "sources": []}}
    try:
        decision["arch"] = arch_of(state["machine"])
    except K3sHostError:
        decision["arch"] = None
    for want in wanted["files"]:
        why = _file_differs(state["files"].get(want["path"]), want)
        if why:
            decision["files"].append(dict(want, why=why))
            if want["restart"]:
                decision["restart"].append(f"{want['path']} ({why})")
    ours = {os.path.basename(want["path"]) for want in wanted["files"] if want["path"].startswith(DROPIN_DIR + "/")}
    for name, first in sorted(state["dropins"].items()):
        if first.startswith(MARK) and name not in ours:
            decision["remove"].append(f"{DROPIN_DIR}/{name}")
            decision["restart"].append(f"{DROPIN_DIR}/{name} (no longer wanted)")
    other_path = f"{UNIT_DIR}/{other}"
    if state["files"].get(other_path) is not None:
        decision["remove"].append(other_path)
    decision["dirs"] = [path for path in wanted["dirs"] if not state["dirs"].get(path)]
    decision["modules"] = [name for name in wanted["modules"] if not state["modules"].get(name)]
    sysctls = {str(key): str(value) for key, value in (wanted.get("sysctls") or {}).items()}
    decision["sysctls"] = bool(decision["modules"]) or any(state["sysctls"].get(key) != value
                                                           for key, value in sysctls.items())
    decision["users"] = [name for name in wanted.get("users") or [] if not state["users"].get(name)]
    firewall, rules = state.get("firewall") or {"kind": "none"}, wanted.get("firewall") or {}
    decision["firewall"] = {"kind": firewall["kind"], "ports": [], "sources": []}
    if firewall["kind"] != "none":
        decision["firewall"]["ports"] = [port for port in rules.get("ports", []) if port not in firewall["ports"]]
        decision["firewall"]["sources"] = [net for net in rules.get("sources", []) if net not in firewall["sources"]]

    binary, artifact = state["binary"], wanted.get("artifact")
    source, source_reason = binary_source(wanted.get("artifact_dir"), wanted.get("from_release"))
    decision["source"] = source
    decision["release"] = release_names(decision["arch"]) if decision["arch"] else None
    if source == "artifact" and not artifact:
        raise K3sHostError(f"k3s: the artifact directory has no release files for this host's machine "
                           f"({state['machine']}, k3s arch {decision['arch']})")
    if source == "artifact":
        want_sha = artifact["binary"]["sha256"]
        if binary is None or binary["sha256"] != want_sha:
            decision["binary"] = {"action": "copy", "reason": "missing" if binary is None else
                                  f"sha256 {binary['sha256'][:12]}... is not the artifact's {want_sha[:12]}..."}
        else:
            decision["binary"] = {"action": "keep", "reason": f"the artifact's binary ({want_sha[:12]}...)"}
    elif source == "release":
        if binary is None or binary["version"] != wanted["version"]:
            decision["binary"] = {"action": "download", "reason": "missing" if binary is None else
                                  f"version {binary['version']} is not {wanted['version']}"}
        else:
            decision["binary"] = {"action": "keep", "reason": f"version {binary['version']}"}
    elif binary is not None:
        decision["binary"] = {"action": "keep", "reason": "installed before; no source to compare it with"}
    else:
        decision["binary"] = {"action": "none", "reason": source_reason}
    if decision["binary"]["action"] in ("copy", "download"):
        decision["restart"].append(f"the k3s binary ({decision['binary']['reason']})")

    images = (artifact or {}).get("images")
    decision["images"] = {"action": "none"}
    if images:
        have = state["images"].get(images["name"])
        decision["images"] = {"action": "keep" if have == images["sha256"] else "copy", **images,
                              "dest": f"{IMAGES_DIR}/{images['name']}"}
        if decision["images"]["action"] == "copy":
            decision["restart"].append(f"the images {images['name']}")

    decision["live"] = decision["binary"]["action"] != "none"
    decision["live_reason"] = "" if decision["live"] else decision["binary"]["reason"]
    if decision["live"]:
        # Only where nothing of that name is: a kubectl of the distribution's stays.
        decision["links"] = [name for name in LINKS if state["links"].get(name, "missing") == "missing"]
    decision["service"] = state["units"].get(unit) or {"enabled": "", "active": ""}
    # What the file_set module takes: the files that differ, as path, content and mode.
    decision["write"] = [{key: item[key] for key in ("path", "content", "mode")} for item in decision["files"]]
    decision["pending"] = _pending(decision)
    return decision


def _pending(decision):
    """One line per change, for a person and for check mode (where raw tasks do not run)."""
    lines = [f"write {item['path']} ({item['why']})" for item in decision["files"]]
    lines += [f"remove {path}" for path in decision["remove"]]
    lines += [f"make directory {path}" for path in decision["dirs"]]
    lines += [f"add user {name}" for name in decision["users"]]
    lines += [f"load module {name}" for name in decision["modules"]]
    if decision["sysctls"]:
        lines.append("apply the sysctl settings")
    firewall = decision["firewall"]
    lines += [f"open {port} in {firewall['kind']}" for port in firewall["ports"]]
    lines += [f"trust {net} in {firewall['kind']}" for net in firewall["sources"]]
    if decision["binary"]["action"] in ("copy", "download"):
        lines.append(f"{decision['binary']['action']} the k3s binary ({decision['binary']['reason']})")
    if decision["images"]["action"] == "copy":
        lines.append(f"copy the images {decision['images']['name']}")
    lines += [f"link {name} to {BINARY}" for name in decision["links"]]
    if decision["live"]:
        service = decision["service"]
        if decision["restart"] and service.get("active") == "active":
            lines.append(f"restart {decision['unit']} ({'; '.join(decision['restart'])})")
        elif service.get("active") != "active" or service.get("enabled") != "enabled":
            lines.append(f"enable and start {decision['unit']}")
    return lines


def token_source(token_given, state, token_file, first_server):
    """Where the cluster token comes from: {from: 'variable' | 'first server' | 'file' | 'generate', path}.

    Only the first server's read decides: its token file, else the token k3s keeps itself
    (a server made before the role), else a new one is generated there. The others get
    what the first server holds. Nothing here sees the token itself.
    """
    if token_given:
        return {"from": "variable", "path": None}
    if not first_server:
        return {"from": "first server", "path": None}
    for path in (token_file, K3S_SERVER_TOKEN):
        entry = state["token_files"].get(path)
        if entry and entry["size"] > 0:
            return {"from": "file", "path": path}
    return {"from": "generate", "path": token_file}
