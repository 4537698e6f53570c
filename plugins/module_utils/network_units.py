# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a set of systemd-networkd or netplan files defines, and how a switch between two sets is made.

network_commit plans each change with plan_change before it writes anything: which
netdevs must be deleted before the reload (networkd never changes an existing one),
which .network files must be written again to drop stale pointers, which links need a
reconfigure, and whether only a networkd restart applies the change (a redefined VLAN).
The systemd 252 behaviour this relies on is described in network_commit's docstring.
"""

from __future__ import annotations

import fnmatch
import json

try:
    import yaml
except ImportError:
    yaml = None  # netplan files are then written and reloaded, their netdevs not handled.

# [Network] settings that name a netdev: the .network object holds a pointer to it.
NETDEV_REF_KEYS = frozenset(['Bond', 'Bridge', 'VRF', 'BatmanAdvanced', 'VLAN', 'MACVLAN',
                             'MACVTAP', 'IPVLAN', 'IPVTAP', 'VXLAN', 'Tunnel', 'MACsec', 'Xfrm'])
# ... of which these are stacked on the link: deleting the link deletes them too.
STACKED_REF_KEYS = frozenset(['VLAN', 'MACVLAN', 'MACVTAP', 'IPVLAN', 'IPVTAP', 'VXLAN',
                              'Tunnel', 'MACsec', 'Xfrm'])
# Netdev kinds networkd creates on a parent link (unless Independent=yes for tunnels, VXLAN).
STACKED_KINDS = frozenset(['vlan', 'macvlan', 'macvtap', 'ipvlan', 'ipvtap', 'vxlan', 'ipip', 'sit',
                           'gre', 'gretap', 'ip6gre', 'ip6gretap', 'vti', 'vti6', 'ip6tnl', 'erspan',
                           'macsec', 'xfrm'])
NETPLAN_VIRTUAL = ('bonds', 'bridges', 'vlans', 'tunnels', 'vrfs', 'dummy-devices',
                   'virtual-ethernets')
NETPLAN_PHYSICAL = ('ethernets', 'wifis', 'modems')


# ---------------------------------------------------------------- parsing

def parse_unit(text):
    """Return (section, key, value) of a systemd unit-style file, in order."""
    entries = []
    section = None
    pending = ''
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ''
        if line.endswith('\\'):
            pending = line[:-1] + ' '
            continue
        if not line or line[0] in '#;':
            continue
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1].strip()
            continue
        if '=' in line and section is not None:
            key, value = line.split('=', 1)
            entries.append((section, key.strip(), value.strip()))
    return entries


def netdev_names(text):
    """Names a .netdev file defines ([NetDev] Name=; the last assignment wins)."""
    names = [v for s, k, v in parse_unit(text) if s == 'NetDev' and k == 'Name' and v]
    return names[-1:]


def netdev_stacked(text):
    """Whether a .netdev file's device is stacked on a parent link (VLAN, MACVLAN, tunnel, ...)."""
    entries = parse_unit(text)
    kinds = [v.lower() for s, k, v in entries if s == 'NetDev' and k == 'Kind']
    independent = [v.lower() for s, k, v in entries if k == 'Independent' and s in ('Tunnel', 'VXLAN')]
    return bool(kinds) and kinds[-1] in STACKED_KINDS and not (
        independent and independent[-1] in ('1', 'yes', 'true', 'on'))


def match_names(text):
    """[Match] Name= patterns of a .network file (an empty assignment resets the list)."""
    names = []
    for section, key, value in parse_unit(text):
        if section == 'Match' and key == 'Name':
            names = [] if not value else names + value.split()
    return names


def netdev_refs(text, keys=NETDEV_REF_KEYS):
    """Netdev names a .network file points to ([Network] Bond=, VLAN=, ...)."""
    return {v for s, k, v in parse_unit(text) if s == 'Network' and k in keys and v}


def _netplan_doc(text):
    if yaml is None:
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    network = doc.get('network') if isinstance(doc, dict) else None
    return network if isinstance(network, dict) else {}


def netplan_model(text):
    """Virtual devices (name -> definition), links and stacked VLANs of a netplan YAML file.

    None when PyYAML is missing on the host.
    """
    network = _netplan_doc(text)
    if network is None:
        return None
    virtual, links, stacked, members, stacked_devices = {}, set(), {}, {}, set()
    for kind in NETPLAN_VIRTUAL + NETPLAN_PHYSICAL:
        devices = network.get(kind)
        if not isinstance(devices, dict):
            continue
        for name, conf in devices.items():
            name = str(name)
            conf = conf if isinstance(conf, dict) else {}
            match = conf.get('match') if isinstance(conf.get('match'), dict) else {}
            links.add(str(conf.get('set-name') or match.get('name') or name))
            if kind in NETPLAN_VIRTUAL:
                virtual[name] = json.dumps([kind, conf], sort_keys=True, default=str)
            if kind in ('vlans', 'tunnels') and conf.get('link'):
                stacked.setdefault(str(conf['link']), set()).add(name)
                stacked_devices.add(name)
            if kind in ('bonds', 'bridges', 'vrfs') and isinstance(conf.get('interfaces'), list):
                members[name] = {str(i) for i in conf['interfaces']}
    return {'virtual': virtual, 'links': links, 'stacked': stacked, 'members': members,
            'stacked_devices': stacked_devices}


def entry_text(entry):
    """The text of an owned file entry ({data, mode, symlink}); empty for a symlink or no entry."""
    return entry['data'].decode('utf-8', 'replace') if entry and entry.get('data') is not None else ''


def _kind(name):
    for suffix, kind in (('.netdev', 'netdev'), ('.network', 'network'), ('.link', 'link'),
                         ('.yaml', 'netplan'), ('.yml', 'netplan')):
        if name.endswith(suffix):
            return kind
    return 'other'


def _describe(files):
    """What a set of owned files defines: netdevs, .network files, netplan devices."""
    model = {'netdevs': {}, 'stacked': set(), 'networks': {},
             'netplan': {'virtual': {}, 'links': set(), 'stacked': {}, 'members': {}, 'stacked_devices': set()},
             'netplan_unparsed': False}
    for name in sorted(files):
        text = entry_text(files[name])
        kind = _kind(name)
        if kind == 'netdev':
            for dev in netdev_names(text):
                model['netdevs'][dev] = name
                if netdev_stacked(text):
                    model['stacked'].add(dev)
        elif kind == 'network':
            model['networks'][name] = {
                'match': match_names(text),
                'refs': netdev_refs(text),
                'stacked': netdev_refs(text, STACKED_REF_KEYS),
            }
        elif kind == 'netplan':
            parsed = netplan_model(text)
            if parsed is None:
                model['netplan_unparsed'] = True
                continue
            model['netplan']['virtual'].update(parsed['virtual'])
            model['netplan']['links'] |= parsed['links']
            model['netplan']['members'].update(parsed['members'])
            model['netplan']['stacked_devices'] |= parsed['stacked_devices']
            for lower, uppers in parsed['stacked'].items():
                model['netplan']['stacked'].setdefault(lower, set()).update(uppers)
    return model


def _resolve(patterns, existing):
    """Link names for [Match] Name= patterns: plain names as they are, globs against the links."""
    names = set()
    for pattern in patterns:
        if pattern.startswith('!'):
            continue
        if any(c in pattern for c in '*?['):
            names.update(n for n in existing if fnmatch.fnmatchcase(n, pattern))
        else:
            names.add(pattern)
    return names


def _stacked_closure(devices, models):
    """Devices plus everything stacked on them: deleting a link deletes its VLANs too."""
    result = set(devices)
    while True:
        more = set()
        for model in models:
            for info in model['networks'].values():
                if set(info['match']) & result:
                    more |= info['stacked']
            for lower, uppers in model['netplan']['stacked'].items():
                if lower in result:
                    more |= uppers
        if more <= result:
            return result
        result |= more


def plan_change(old, new, existing_links):
    """Compare two sets of owned files ({name: {'data', 'mode', 'symlink'}}) and plan the switch.

    Returns the file lists and, for networkd's sake:
      delete   devices to delete before the reload (changed/removed netdevs that exist);
      refresh  unchanged files of ``new`` to write again so the reload rebuilds their
               .network objects (they name a netdev that is recreated);
      reconfigured  links the reload reconfigures;
      at_risk  links whose .network names a deleted device (members, parents): networkd may
               leave them failed, which a reload skips, so they are reconfigured by name;
      restart  stacked netdevs redefined under the same name: only a restart of networkd
               makes their new definition count.
    """
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(n for n in set(old) & set(new) if _entry_key(old[n]) != _entry_key(new[n]))
    differing = added + changed + removed
    before, after = _describe(old), _describe(new)
    existing = set(existing_links)

    # Netdev names whose definition differs, from .netdev files and from netplan YAML.
    touched = set()
    for name in differing:
        if _kind(name) == 'netdev':
            touched.update(netdev_names(entry_text(old.get(name))))
            touched.update(netdev_names(entry_text(new.get(name))))
    for dev in set(before['netplan']['virtual']) | set(after['netplan']['virtual']):
        if before['netplan']['virtual'].get(dev) != after['netplan']['virtual'].get(dev):
            touched.add(dev)
    # A device whose definition changed or went away is deleted; one only added is left
    # alone when it exists already (it was not made from our files).
    only_added = {dev for dev in touched
                  if dev not in before['netdevs'] and dev not in before['netplan']['virtual']}
    delete = sorted(dev for dev in touched - only_added if dev in existing)
    fresh = _stacked_closure(touched | set(delete), (before, after))

    refresh = sorted(name for name, info in after['networks'].items()
                     if name not in differing and info['refs'] & fresh)

    gone = _stacked_closure(set(delete), (before, after))
    at_risk = set()
    if gone:
        for info in after['networks'].values():
            if info['refs'] & gone:
                at_risk |= _resolve(info['match'], existing)
        for dev, ifaces in after['netplan']['members'].items():
            if dev in gone:
                at_risk |= ifaces
        for lower, uppers in after['netplan']['stacked'].items():
            if uppers & gone:
                at_risk.add(lower)
    stacked = (before['stacked'] | after['stacked'] | before['netplan']['stacked_devices']
               | after['netplan']['stacked_devices'])
    redefined_same_name = {dev for dev in touched
                           if (dev in before['netdevs'] or dev in before['netplan']['virtual'])
                           and (dev in after['netdevs'] or dev in after['netplan']['virtual'])}

    reconfigured = set()
    for name in differing + refresh:
        for files, model in ((old, before), (new, after)):
            if name in files and name in model['networks']:
                reconfigured |= _resolve(model['networks'][name]['match'], existing)
            elif name in files and _kind(name) == 'netplan':
                parsed = netplan_model(entry_text(files[name]))
                if parsed:
                    reconfigured |= parsed['links']
    return {
        'added': added,
        'changed': changed,
        'removed': removed,
        'delete': delete,
        'created': sorted(only_added),
        'redefined': sorted(dev for dev in touched
                            if dev in after['netdevs'] or dev in after['netplan']['virtual']),
        'refresh': refresh,
        'reconfigured': sorted(reconfigured),
        'at_risk': sorted(at_risk),
        'restart': sorted(redefined_same_name & stacked),
        'netplan_unparsed': before['netplan_unparsed'] or after['netplan_unparsed'],
        'links_changed': sorted(n for n in differing if _kind(n) == 'link'),
    }


def _entry_key(entry):
    return (entry.get('symlink'), entry.get('data'), entry.get('mode'))
