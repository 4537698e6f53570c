# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that the netplan YAML and the networkd files configure the same network.

For each model, ``netplan generate`` turns render_netplan's YAML into networkd files in a
scratch root; both file sets are then reduced to one semantic form per interface (kind,
bond settings, VLAN id and parent, bond membership, addresses, gateway, DHCP, MTU,
link-local and the wait-online/carrier flags) and compared. Every key of every file is
accounted for: a key the normalizer does not know is kept verbatim and compared too, and
what is dropped as irrelevant is listed below with the reason.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import network_render as nr
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.network_units import (
    load_models,
    parse_unit,
)

MODELS = load_models()
NETPLAN = shutil.which("netplan") or next(
    (path for path in ("/usr/sbin/netplan", "/sbin/netplan") if pathlib.Path(path).exists()), None
)

_TRUE = {"yes", "true", "1", "on"}
_FALSE = {"no", "false", "0", "off"}

# Keys dropped on purpose, by (file suffix, section, key), with the reason.
IGNORED = {
    # netplan writes a udev .link file for every ethernet it configures and turns Wake-on-LAN
    # off there; networkd leaves the driver's default. It does not change addressing,
    # bonding, VLANs or MTU (the .link MTU is checked against the .network's below).
    (".link", "Link", "WakeOnLan"),
    # The .link files match by the kernel's original name; ours match by name in .network.
    # With no renaming in either (ids are the link names), both reach the same link.
    (".link", "Match", "OriginalName"),
    # netplan always writes a DHCPv4 route metric (100). With UseRoutes=false, DHCP installs
    # no routes; the metric then only ranks the lease's own subnet route, the one route to
    # that subnet, so the rank never decides anything.
    (".network", "DHCPv4", "RouteMetric"),
}


def _bool(value):
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _ms(value):
    """A systemd time span in milliseconds: 100ms, 1s, or a bare number (seconds)."""
    for suffix, factor in (("ms", 1), ("s", 1000), ("min", 60000)):
        if value.endswith(suffix) and value[: -len(suffix)].isdigit():
            return int(value[: -len(suffix)]) * factor
    return int(value) * 1000


def _section(name):
    # [DHCP] is the name networkd older than v246 used for [DHCPv4], still accepted (and
    # written by netplan 0.106); systemd 252 reads both the same.
    return "DHCPv4" if name == "DHCP" else name


def _default_route(gateway):
    return ("::/0" if ":" in gateway else "0.0.0.0/0", gateway)


def normalize(files):
    """{interface: semantic settings} from {file name: content} of .netdev/.network/.link files."""
    interfaces = {}
    vlan_parents = {}

    def iface(name):
        return interfaces.setdefault(name, {
            "kind": "ether", "mtu": set(), "bond": None, "vlan_id": None, "vlan_parent": None,
            "member_of": None, "primary": False, "addresses": [], "default_routes": [], "dhcp": "no",
            "dhcp_options": {}, "link_local": None, "accept_ra": None, "required_for_online": True,
            "without_carrier": False, "vlans": [], "other": [],
        })

    for file_name in sorted(files):
        suffix = pathlib.PurePath(file_name).suffix
        if suffix not in (".netdev", ".network", ".link"):
            raise AssertionError(f"{file_name}: a file neither renderer should write")
        sections = [(_section(name), items) for name, items in parse_unit(files[file_name])]
        if suffix == ".netdev":
            name = dict(sections[0][1])["Name"]
        else:
            match = dict(next(items for section, items in sections if section == "Match"))
            name = match.get("Name") or match["OriginalName"]
        entry = iface(name)
        for section, items in sections:
            route = {}
            for key, value in items:
                where = (suffix, section, key)
                if where in IGNORED:
                    continue
                if section == "Match" and key == "Name":
                    continue
                if section == "NetDev" and key == "Name":
                    continue
                if section == "NetDev" and key == "Kind":
                    entry["kind"] = value
                elif key == "MTUBytes" and section in ("NetDev", "Link"):
                    # The same MTU may be set in the .netdev, the .network and netplan's .link;
                    # they must agree, so they collect in one set.
                    entry["mtu"].add(int(value))
                elif section == "Bond":
                    bond = entry["bond"] = entry["bond"] or {}
                    if key.endswith("Sec"):
                        bond[key] = _ms(value)
                    else:
                        bond[key] = value
                elif section == "VLAN" and key == "Id":
                    entry["vlan_id"] = int(value)
                elif (section, key) == ("Network", "VLAN"):
                    entry["vlans"].append(value)
                    vlan_parents[value] = name
                elif (section, key) == ("Network", "Bond"):
                    entry["member_of"] = value
                elif (section, key) == ("Network", "PrimarySlave"):
                    entry["primary"] = _bool(value)
                elif (section, key) == ("Network", "Address"):
                    entry["addresses"].append(value)
                elif (section, key) == ("Network", "Gateway"):
                    # Gateway= in [Network] is networkd's shorthand for a [Route] section
                    # with Gateway= alone: a default route.
                    entry["default_routes"].append(_default_route(value))
                elif section == "Route":
                    route[key] = value
                elif (section, key) == ("Network", "DHCP"):
                    entry["dhcp"] = value
                elif section == "DHCPv4":
                    entry["dhcp_options"][key] = _bool(value) if value.lower() in _TRUE | _FALSE else value
                elif (section, key) == ("Network", "LinkLocalAddressing"):
                    entry["link_local"] = value
                elif (section, key) == ("Network", "IPv6AcceptRA"):
                    entry["accept_ra"] = _bool(value)
                elif (section, key) == ("Link", "RequiredForOnline"):
                    entry["required_for_online"] = _bool(value)
                elif (section, key) == ("Network", "ConfigureWithoutCarrier"):
                    entry["without_carrier"] = _bool(value)
                else:
                    # Unknown to the normalizer: compared verbatim, so neither side can
                    # carry a setting the other lacks.
                    entry["other"].append((suffix, section, key, value))
            if route:
                gateway = route.pop("Gateway")
                destination = route.pop("Destination", _default_route(gateway)[0])
                assert not route, f"{file_name}: route settings the test does not compare: {route}"
                if destination in ("0.0.0.0/0", "::/0"):
                    entry["default_routes"].append((destination, gateway))
                else:
                    entry["other"].append((suffix, "Route", destination, gateway))

    for vlan, parent in vlan_parents.items():
        iface(vlan)["vlan_parent"] = parent
    for entry in interfaces.values():
        assert len(entry["mtu"]) <= 1, f"conflicting MTUs {sorted(entry['mtu'])}"
        entry["mtu"] = entry["mtu"].pop() if entry["mtu"] else None
        # Order carries no meaning for these: several Address=/VLAN= lines configure the same.
        for key in ("addresses", "default_routes", "vlans", "other"):
            entry[key] = sorted(entry[key])
    return interfaces


def netplan_generate(text, root):
    netplan_dir = root / "etc" / "netplan"
    netplan_dir.mkdir(parents=True)
    path = netplan_dir / "60-aicluster-lab.yaml"
    path.write_text(text)
    path.chmod(0o600)  # netplan warns about files others can read
    run = subprocess.run([NETPLAN, "generate", "--root-dir", str(root)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"netplan generate failed:\n{run.stdout}{run.stderr}\n--- input:\n{text}"
    assert "Warning" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    out = root / "run" / "systemd" / "network"
    return {path.name: path.read_text() for path in sorted(out.iterdir())}


@pytest.fixture
def netplan_available():
    if not NETPLAN:
        pytest.skip("netplan is not installed: apt-get install --no-install-recommends netplan.io (./lab setup does)")
    return NETPLAN


@pytest.mark.parametrize("profile", sorted(MODELS))
def test_netplan_and_networkd_configure_the_same(profile, tmp_path, netplan_available):
    model = MODELS[profile]
    ours = normalize(nr.render_networkd(model))
    generated = netplan_generate(nr.render_netplan(model), tmp_path)
    assert all(name.startswith("10-netplan-") for name in generated)
    theirs = normalize(generated)
    assert sorted(ours) == sorted(model["interfaces"])
    assert theirs == ours


def test_the_comparison_sees_a_difference(tmp_path, netplan_available):
    # Guard against a normalizer that maps everything to the same thing.
    model = MODELS["bonding-vlans"]
    changed = nr.render_networkd(model)
    changed["10-aicluster-bond0.netdev"] = changed["10-aicluster-bond0.netdev"].replace("MIIMonitorSec=100ms", "MIIMonitorSec=200ms")
    changed["10-aicluster-eth2.network"] += "PrimarySlave=true\n"
    generated = normalize(netplan_generate(nr.render_netplan(model), tmp_path))
    ours = normalize(changed)
    assert generated["bond0"]["bond"]["MIIMonitorSec"] == 100 and ours["bond0"]["bond"]["MIIMonitorSec"] == 200
    assert generated["eth2"]["primary"] is False and ours["eth2"]["primary"] is True


def test_normalizer_reads_what_the_renderer_means():
    # The normalized form of our own files, spelled out for one profile.
    form = normalize(nr.render_networkd(MODELS["bonding-vlans"]))
    assert form["eth1"]["member_of"] == "bond0" and form["eth1"]["primary"] is True
    assert form["bond0"]["kind"] == "bond"
    assert form["bond0"]["bond"] == {"Mode": "active-backup", "MIIMonitorSec": 100, "UpDelaySec": 0, "DownDelaySec": 0}
    assert form["bond0"]["vlans"] == ["bond0.100", "bond0.200"]
    assert (form["bond0.200"]["kind"], form["bond0.200"]["vlan_id"], form["bond0.200"]["vlan_parent"]) == ("vlan", 200, "bond0")
    assert form["bond0.200"]["addresses"] == ["192.168.200.11/24"]
    assert form["bond0.200"]["link_local"] == "ipv6" and form["bond0.100"]["link_local"] == "no"
    assert all(entry["other"] == [] for entry in form.values())
