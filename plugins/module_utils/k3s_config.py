# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan + role inputs -> each host's /etc/rancher/k3s/config.yaml, checked before it is written.

Built on the controller for all hosts at once, like the plan, because the rules that
matter span hosts: the first server initialises embedded etcd and everyone else joins
its cluster address; the servers must agree on the cluster's ranges and datastore; an
even number of etcd members tolerates no more failures than one fewer.

What comes from where (one hop each, so a value can be followed from the inventory):

- ``node-ip``, ``flannel-iface``: the plan's cluster endpoint (address without prefix,
  interface); for servers also ``advertise-address`` and ``tls-san``;
- ``cluster-cidr``, ``service-cidr``, ``cluster-dns``: the network profile's k3s section,
  as the model carries it (network_model checks them against the profile's networks);
- ``node-label``, ``node-taint``: the inventory variables ``k3s_node_labels`` and
  ``k3s_node_taints``;
- anything else: ``extra`` (for the whole cluster) and ``k3s_config_extra`` (per host).

The token is never part of a config: each config names ``token-file``, a 0600 file the
role writes apart, so a config can be shown in a diff or a report as it is.

Every config is checked against the pinned release's flags (k3s_flags) because k3s only
warns about a key it does not know and runs without it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_flags
from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

# The only variables of a host that the k3s config reads from the inventory.
HOST_KEYS = ("k3s_node_labels", "k3s_node_taints", "k3s_config_extra")
TOKEN_FILE = "/etc/rancher/k3s/cluster-token"
API_PORT = 6443
SECRET_KEYS = ("token", "agent-token")
# Keys the collection derives: set through the plan, the profile or the k3s_node_*
# variables, never through extra config, so each has one source.
DERIVED = {
    "node-ip": "the plan's cluster address", "flannel-iface": "the plan's cluster interface",
    "advertise-address": "the plan's cluster address", "cluster-init": "the first server",
    "server": "the first server's cluster address", "token-file": "the role's token_file",
    "cluster-cidr": "the profile's k3s.cluster_cidr", "service-cidr": "the profile's k3s.service_cidr",
    "cluster-dns": "the profile's k3s.cluster_dns", "node-label": "k3s_node_labels",
    "node-taint": "k3s_node_taints",
}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# A Go time.Duration as time.ParseDuration reads it: "300ms", "5m", "1h30m0s".
_DURATION = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|\u00b5s|ms|s|m|h))+)$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?=([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$")
_TAINT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?(=[A-Za-z0-9._-]*)?:([A-Za-z]+)$")


class K3sConfigError(InputError):
    """A role input or a rendered value that cannot make a valid k3s config."""


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(host, role):
    return f"k3s config, host {host} ({role})"


def _fail(host, role, field, text):
    raise K3sConfigError(f"{_where(host, role)}: {field}: {text}")


def _as_list(value):
    """A slice flag's value as a list; k3s also splits a slice's strings at commas."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [part.strip() for item in items for part in str(item).split(",")]


def check_value(host, role, key, value):
    """Raise unless ``value`` suits the flag ``key`` of a ``role`` ("server" or "agent")."""
    if not isinstance(key, str) or key not in k3s_flags.FLAGS:
        close = difflib.get_close_matches(str(key), k3s_flags.FLAGS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        _fail(host, role, key, f"{_show(value)}: not a flag of k3s {k3s_flags.K3S_VERSION} (k3s would skip it "
                               f"and run without it){hint}")
    if not k3s_flags.accepted_by(key, role):
        _fail(host, role, key, f"{_show(value)}: a k3s {k3s_flags.FLAGS[key][1]}-only flag; "
                               f"a k3s {role} would skip it")
    kind = k3s_flags.flag_type(key)
    if kind == k3s_flags.BOOL:
        good, what = isinstance(value, bool), "true or false"
    elif kind == k3s_flags.INT:
        good, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif kind == k3s_flags.DURATION:
        good, what = isinstance(value, str) and bool(_DURATION.match(value)), "a Go duration such as 30s or 5m0s"
    elif kind == k3s_flags.SLICE:
        items = value if isinstance(value, (list, tuple)) else [value]
        good = bool(items) and all(isinstance(item, str) and item for item in items)
        what = "a string or a list of strings"
    else:
        # YAML reads 0644 as the number 420: a mode or a port range must be quoted.
        good, what = isinstance(value, str), "a string (quote numbers such as a file mode)"
    if not good:
        _fail(host, role, key, f"{_show(value)} is not {what} (k3s {kind} flag)")


def _labels(host, role, value):
    field = "k3s_node_labels"
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [f"{key}={'' if item is None else item}" for key, item in value.items()]
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(host, role, field, f"{_show(value)} must be a mapping of label to value or a list of key=value")
    for label in value:
        if not isinstance(label, str) or not _LABEL.match(label):
            _fail(host, role, field, f"{_show(label)} is not a node label like example.com/gpu=true")
    return list(value)


def _taints(host, role, value):
    field = "k3s_node_taints"
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(host, role, field, f"{_show(value)} must be a list of key=value:Effect")
    for taint in value:
        match = _TAINT.match(taint) if isinstance(taint, str) else None
        if not match or match.group(3) not in TAINT_EFFECTS:
            _fail(host, role, field, f"{_show(taint)} is not a taint like gpu=true:NoSchedule "
                                     f"(effects: {', '.join(TAINT_EFFECTS)})")
    return list(value)


def _extra(host, role, value, field):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(host, role, field, f"{_show(value)} must be a mapping of k3s flags to values")
    for key, item in value.items():
        if key in SECRET_KEYS:
            _fail(host, role, f"{field}.{key}", "a secret never goes into config.yaml; the role writes it to a 0600 "
                                                "file named by token-file")
        if key in DERIVED:
            _fail(host, role, f"{field}.{key}", f"{_show(item)}: set from {DERIVED[key]}, not here")
    return dict(value)


def _networks(text):
    return [ipaddress.ip_network(part, strict=True) for part in _as_list(text)]


def _check_ranges(host, role, config):
    """cluster-dns inside service-cidr, whatever produced them (a plan from elsewhere too)."""
    try:
        services = _networks(config["service-cidr"])
        dns = [ipaddress.ip_address(part) for part in _as_list(config["cluster-dns"])]
        _networks(config["cluster-cidr"])
    except ValueError as exc:
        _fail(host, role, "cluster-cidr/service-cidr/cluster-dns", f"not a valid range or address ({exc})")
    for address in dns:
        if not any(address.version == net.version and address in net for net in services):
            _fail(host, role, "cluster-dns", f"{address} is outside service-cidr {config['service-cidr']}")


def _host_list(value, what):
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise K3sConfigError(f"k3s config: {what}: {_show(value)} must be a list of inventory host names")
    return [str(host) for host in value]


def _endpoint(plan, host, role):
    entry = plan.get(host)
    if entry is None:
        raise K3sConfigError(f"{_where(host, role)}: not in the plan (hosts: {', '.join(sorted(plan)) or 'none'}); "
                             f"the k3s groups must be planned hosts")
    cluster = entry.get("cluster") if isinstance(entry, Mapping) else None
    if not cluster:
        raise K3sConfigError(f"{_where(host, role)}: the plan has no cluster network for it (the run has no "
                             f"network_profile); node-ip and flannel-iface come from the cluster network")
    model = entry.get("network") or {}
    return cluster, dict(model.get("k3s") or {})


def _base(plan, host, role, first_address, options):
    cluster, k3s = _endpoint(plan, host, role)
    address = cluster.get("address")
    config = {}
    # An address the plan does not know (DHCP without a fixed lease) is left to k3s,
    # which takes the address of the interface flannel uses.
    if address:
        config["node-ip"] = address
    config["flannel-iface"] = cluster["interface"]
    if role == "server":
        if address:
            config["advertise-address"] = address
        config["tls-san"] = ([address] if address else []) + [san for san in options["tls_san"] if san != address]
        config["cluster-cidr"] = k3s.get("cluster_cidr")
        config["service-cidr"] = k3s.get("service_cidr")
        config["cluster-dns"] = k3s.get("cluster_dns")
    if first_address is None:
        config["cluster-init"] = True
    else:
        config["server"] = f"https://{first_address}:{options['api_port']}"
    config["token-file"] = options["token_file"]
    return config


def build_configs(plan, servers, agents=None, host_vars=None, extra=None, tls_san=None, token_file=TOKEN_FILE,
                  api_port=API_PORT):
    """{host: config.yaml as a dict} for ``servers`` (the first initialises the cluster) and ``agents``.

    ``plan`` is the plan (plan.build_plan); ``host_vars[host]`` may hold the variables in
    HOST_KEYS. ``extra`` holds cluster-wide flags: all of them go to every server, and to
    agents those an agent takes. Raises K3sConfigError naming the host, the key and the
    value before anything is returned: one bad host stops every config.
    """
    if not isinstance(plan, Mapping):
        raise K3sConfigError(f"k3s config: the plan must be a mapping of hosts to their entries, got {_show(plan)}")
    servers, agents = _host_list(servers, "servers"), _host_list(agents, "agents")
    host_vars = host_vars or {}
    if not servers:
        raise K3sConfigError("k3s config: servers: no server; the k3s servers group must name at least one host")
    seen = {}
    for role, hosts in (("server", servers), ("agent", agents)):
        for host in hosts:
            if host in seen:
                raise K3sConfigError(f"{_where(host, role)}: listed twice (also as {seen[host]}); "
                                     f"a host is a server or an agent, once")
            seen[host] = role
    tls_san = _host_list(tls_san, "tls_san")
    options = {"tls_san": tls_san, "token_file": token_file, "api_port": api_port}
    if not isinstance(token_file, str) or not token_file.startswith("/"):
        raise K3sConfigError(f"k3s config: token_file: {_show(token_file)} must be an absolute path")

    first = servers[0]
    first_address = _endpoint(plan, first, "server")[0].get("address")
    if not first_address:
        raise K3sConfigError(f"{_where(first, 'server')}: the plan has no cluster address for the first server "
                             f"(DHCP without a fixed lease); every other node joins it there")
    cluster_extra = _extra("all", "cluster", extra, "extra")
    configs = {}
    for role, hosts in (("server", servers), ("agent", agents)):
        for host in hosts:
            hostvars = host_vars.get(host) or {}
            config = _base(plan, host, role, None if host == first else first_address, options)
            labels = _labels(host, role, hostvars.get("k3s_node_labels"))
            taints = _taints(host, role, hostvars.get("k3s_node_taints"))
            if labels:
                config["node-label"] = labels
            if taints:
                config["node-taint"] = taints
            for key, value in cluster_extra.items():
                if role == "server" or (key in k3s_flags.FLAGS and k3s_flags.accepted_by(key, "agent")):
                    config[key] = value
            config.update(_extra(host, role, hostvars.get("k3s_config_extra"), "k3s_config_extra"))
            for key, value in config.items():
                check_value(host, role, key, value)
            if role == "server":
                _check_ranges(host, role, config)
            configs[host] = config

    _check_servers_agree(servers, configs)
    embedded = "datastore-endpoint" not in configs[first]
    if embedded and len(servers) % 2 == 0:
        count = len(servers)
        raise K3sConfigError(f"k3s config: servers: {count} servers ({', '.join(servers)}); embedded etcd needs an odd "
                             f"number: {count} servers survive the loss of {(count - 1) // 2}, no more than "
                             f"{count - 1} do, with one more member to lose quorum; add a server or remove one")
    if not embedded:
        # With an external datastore the servers share it instead of an etcd cluster.
        for host in servers:
            configs[host].pop("cluster-init", None)
            configs[host].pop("server", None)
    return configs


def _check_servers_agree(servers, configs):
    first = servers[0]
    for key in k3s_flags.MUST_AGREE:
        want = configs[first].get(key)
        for host in servers[1:]:
            have = configs[host].get(key)
            if have != want:
                shown = "unset" if want is None else _show(want)
                raise K3sConfigError(f"{_where(host, 'server')}: {key}: {'unset' if have is None else _show(have)} "
                                     f"differs from {shown} on {first}; every server must have the same {key}")
