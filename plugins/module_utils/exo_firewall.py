# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's firewall: one nftables table of its own that makes the cluster network
EXO's only path.

EXO cannot be told which interface to use (at the pinned ref its discovery joins its
multicast group on every interface holding an IPv6 address, zenoh listens on ``[::]``
and the API on ``0.0.0.0``), so the role admits its three ports only where the plan
puts the cluster:

- UDP discovery (52413): IPv6, from the peers' link-local addresses, on the cluster
  interface (hellos go to a link-scope multicast group; answers come back unicast);
- TCP zenoh (52414): from the peers' link-local addresses (discovery hands zenoh the
  address a hello came from) and the peers' cluster IPv4 addresses (zenoh's gossip
  passes listen addresses on), on the cluster interface;
- TCP API (52415): from the cluster subnet on the cluster interface, and loopback.

Everything else that reaches those ports is dropped (discovery) or reset (TCP, so a
peer probing the API on another interface fails at once instead of timing out). The
chain's policy is accept: the table decides about EXO's ports only, and other tables
(the distribution's, the user's) are never touched.

``spec``, from the role's decision (module_utils/exo.py), holds: table, interface,
discovery_port, zenoh_port, api_port, peers_v6 and peers_v4 (addresses or prefixes),
api_sources (prefixes). ``ruleset`` writes the file ``nft -f`` loads (it replaces the
table in one transaction); ``expected`` and ``live`` put the intended and the running
table in one normal form, which ``differences`` compares, so the role's change and the
validation judge the kernel's own listing (``nft -j list table``), not the file.
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.names import interface_name

TABLE = "aicluster_exo"
FAMILY = "inet"


class FirewallInputError(InputError):
    """A listing that is not ``nft -j`` JSON, or a spec the role cannot write."""


def _element(value):
    """An address or prefix as nft prints it: a host prefix as the bare address."""
    net = ipaddress.ip_network(str(value), strict=False)
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return f"{net.network_address}/{net.prefixlen}"


def _needs_interval(elements):
    return any("/" in element for element in elements)


def _check_spec(spec):
    missing = [key for key in ("interface", "discovery_port", "zenoh_port", "api_port", "peers_v6", "peers_v4",
                               "api_sources") if key not in (spec or {})]
    if missing:
        raise FirewallInputError(f"firewall spec lacks {', '.join(missing)}: {spec!r}")
    for key, version in (("peers_v6", 6), ("peers_v4", 4), ("api_sources", 4)):
        for value in spec[key]:
            try:
                net = ipaddress.ip_network(str(value), strict=False)
            except ValueError as exc:
                raise FirewallInputError(f"firewall spec {key}: {value!r} is not an address or prefix") from exc
            if net.version != version:
                raise FirewallInputError(f"firewall spec {key}: {value!r} is not IPv{version}")
    try:
        iface = interface_name(spec["interface"])
    except ValueError:
        iface = None
    # The kernel takes a '"' in a name, but the ruleset writes the name between quotes.
    if iface is None or '"' in iface:
        raise FirewallInputError(f"firewall spec interface: {spec['interface']!r} is not an interface name")


def _set_lines(name, kind, elements):
    elements = sorted({_element(value) for value in elements})
    lines = [f"\tset {name} {{", f"\t\ttype {kind}"]
    if _needs_interval(elements):
        lines.append("\t\tflags interval")
    if elements:
        lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
    lines.append("\t}")
    return lines


def _sources(values):
    values = sorted({_element(value) for value in values})
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def ruleset(spec):
    """The nft file of the role's table: created if absent, then replaced whole, in one transaction."""
    _check_spec(spec)
    table = spec.get("table", TABLE)
    iface = spec["interface"]
    disc, zenoh, api = spec["discovery_port"], spec["zenoh_port"], spec["api_port"]
    lines = [
        "# Written by the aicluster.lab exo role; a change here is undone by its next run.",
        f"# EXO's ports are admitted only from the cluster network on {iface}: discovery (UDP {disc})",
        f"# and zenoh (TCP {zenoh}) from the peers, the API (TCP {api}) from the cluster subnet and",
        "# loopback. Anything else reaching them is dropped or reset. Other traffic is not this",
        "# table's business (policy accept), and no other table is touched.",
        f"table {FAMILY} {table}",
        f"delete table {FAMILY} {table}",
        f"table {FAMILY} {table} {{",
        *_set_lines("peers_v6", "ipv6_addr", spec["peers_v6"]),
        *_set_lines("peers_v4", "ipv4_addr", spec["peers_v4"]),
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        '\t\tiifname "lo" accept',
        f'\t\tiifname "{iface}" udp dport {disc} ip6 saddr @peers_v6 accept',
        f'\t\tiifname "{iface}" tcp dport {zenoh} ip6 saddr @peers_v6 accept',
        f'\t\tiifname "{iface}" tcp dport {zenoh} ip saddr @peers_v4 accept',
    ]
    if spec["api_sources"]:
        lines.append(f'\t\tiifname "{iface}" tcp dport {api} ip saddr {_sources(spec["api_sources"])} accept')
    lines += [
        f"\t\tudp dport {disc} counter drop",
        f"\t\ttcp dport {{ {zenoh}, {api} }} counter reject with tcp reset",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def expected(spec):
    """The table ``ruleset(spec)`` makes, in the normal form of ``live``."""
    _check_spec(spec)
    iface = f"meta iifname == {spec['interface']}"
    disc, zenoh, api = spec["discovery_port"], spec["zenoh_port"], spec["api_port"]
    v6 = sorted({_element(value) for value in spec["peers_v6"]})
    v4 = sorted({_element(value) for value in spec["peers_v4"]})
    rules = [
        ("meta iifname == lo", "accept"),
        (iface, f"udp dport == {disc}", "ip6 saddr == @peers_v6", "accept"),
        (iface, f"tcp dport == {zenoh}", "ip6 saddr == @peers_v6", "accept"),
        (iface, f"tcp dport == {zenoh}", "ip saddr == @peers_v4", "accept"),
    ]
    if spec["api_sources"]:
        rules.append((iface, f"tcp dport == {api}", f"ip saddr == {_sources(spec['api_sources'])}", "accept"))
    rules += [
        (f"udp dport == {disc}", "counter", "drop"),
        (f"tcp dport == {{ {zenoh}, {api} }}", "counter", "reject tcp reset"),
    ]
    return {
        "sets": {"peers_v6": {"type": "ipv6_addr", "elements": v6},
                 "peers_v4": {"type": "ipv4_addr", "elements": v4}},
        "chains": {"input": {"type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        "rules": {"input": [list(rule) for rule in rules]},
    }


def _value(node):
    """A match's right-hand side (or a set element) as nft prints it."""
    if isinstance(node, (str, int)):
        return str(node)
    if isinstance(node, dict):
        if "prefix" in node:
            return _element(f"{node['prefix']['addr']}/{node['prefix']['len']}")
        if "set" in node:
            items = node["set"] if isinstance(node["set"], list) else [node["set"]]
            values = [_value(item) for item in items]
            return "{ " + ", ".join(sorted(values, key=_sort_key)) + " }"
        if "range" in node:
            low, high = node["range"]
            return f"{_value(low)}-{_value(high)}"
        if "elem" in node:
            return _value(node["elem"]["val"])
    return json.dumps(node, sort_keys=True)


def _sort_key(value):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _left(node):
    if isinstance(node, dict):
        if "meta" in node:
            return f"meta {node['meta']['key']}"
        if "payload" in node:
            payload = node["payload"]
            return f"{payload.get('protocol', payload.get('base', '?'))} {payload['field']}"
        if "ct" in node:
            return f"ct {node['ct']['key']}"
    return json.dumps(node, sort_keys=True)


def _statement(expr):
    """One rule statement in a short, stable text form (counters without their figures)."""
    if "match" in expr:
        match = expr["match"]
        return f"{_left(match['left'])} {match['op']} {_value(match['right'])}"
    if "counter" in expr:
        return "counter"
    if "reject" in expr:
        reject = expr["reject"] or {}
        kind = reject.get("type", "")
        return ("reject " + kind + (f" {reject['expr']}" if "expr" in reject else "")).strip()
    for verdict in ("accept", "drop", "return", "continue"):
        if verdict in expr:
            return verdict
    if "jump" in expr or "goto" in expr:
        key = "jump" if "jump" in expr else "goto"
        return f"{key} {expr[key]['target']}"
    return json.dumps(expr, sort_keys=True)


def live(text, table=TABLE):
    """``nft -j list table inet <table>`` as the normal form of ``expected``; None when the table does not exist.

    Raises FirewallInputError for output that is neither that JSON nor nft's "no such table" error.
    """
    text = (text or "").strip()
    if not text or "No such file or directory" in text or "does not exist" in text:
        return None
    try:
        listing = json.loads(text)
    except ValueError as exc:
        raise FirewallInputError(f"nft -j list table printed what is not JSON ({exc}): {text[:160]!r}") from exc
    if not isinstance(listing, dict) or not isinstance(listing.get("nftables"), list):
        raise FirewallInputError(f"nft -j list table printed JSON without an 'nftables' list: {text[:160]!r}")
    found = {"sets": {}, "chains": {}, "rules": {}}
    for item in listing["nftables"]:
        if "set" in item and item["set"].get("table") == table:
            entry = item["set"]
            found["sets"][entry["name"]] = {
                "type": entry.get("type"),
                "elements": sorted(_value(element) for element in entry.get("elem") or [])}
        elif "chain" in item and item["chain"].get("table") == table:
            entry = item["chain"]
            found["chains"][entry["name"]] = {key: entry.get(key) for key in ("type", "hook", "prio", "policy")}
        elif "rule" in item and item["rule"].get("table") == table:
            entry = item["rule"]
            found["rules"].setdefault(entry["chain"], []).append([_statement(expr) for expr in entry["expr"]])
    for chain in found["chains"]:
        found["rules"].setdefault(chain, [])
    return found


def differences(want, have):
    """What the running table lacks or has beyond the intended one, as sentences; [] when they agree."""
    if have is None:
        return [f"table {FAMILY} {TABLE} is not loaded"]
    problems = []
    for kind in ("sets", "chains"):
        for name in sorted(set(want[kind]) | set(have[kind])):
            if name not in have[kind]:
                problems.append(f"{kind[:-1]} {name} is missing")
            elif name not in want[kind]:
                problems.append(f"{kind[:-1]} {name} is not the role's")
            elif want[kind][name] != have[kind][name]:
                problems.append(f"{kind[:-1]} {name} is {_short(have[kind][name])}, expected {_short(want[kind][name])}")
    for chain in sorted(set(want["rules"]) & set(have["rules"])):
        wanted, running = want["rules"][chain], have["rules"][chain]
        if wanted != running:
            lacking = [" ".join(rule) for rule in wanted if rule not in running]
            extra = [" ".join(rule) for rule in running if rule not in wanted]
            detail = []
            if lacking:
                detail.append("lacks " + "; ".join(lacking))
            if extra:
                detail.append("has " + "; ".join(extra) + " beyond the plan")
            if not detail:
                detail.append("holds the rules in another order")
            problems.append(f"chain {chain} " + ", ".join(detail))
    return problems


def _short(value):
    if isinstance(value, dict) and "elements" in value:
        return f"{value['type']} {{{', '.join(value['elements'])}}}"
    return ", ".join(f"{key} {value[key]}" for key in sorted(value))
