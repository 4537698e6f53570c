#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_link
short_description: Pull or plug the virtual cable of a running libvirt domain's NIC
description:
  - Sets the link state of one network interface of a running domain, as C(virsh domif-setlink) does.
    The guest sees carrier loss (C(/sys/class/net/IFACE/carrier) becomes 0) or carrier back; the
    interface itself stays attached.
  - The interface is found by its MAC address in the domain's live XML. Its C(<link state=...>) is set and
    the interface XML is given to libvirt with C(VIR_DOMAIN_AFFECT_LIVE) only, so the change lasts until
    the domain stops and the persistent definition is never touched.
  - Idempotent. An interface without C(<link>) element is up.
  - Meant for failover tests; RV(time) says when the change took effect.
version_added: 0.3.0
author:
  - aicluster.lab developers (@aicluster)
requirements:
  - libvirt-python
extends_documentation_fragment:
  - aicluster.lab.libvirt
options:
  name:
    description: Domain name. The domain must be running.
    type: str
    required: true
  mac:
    description:
      - MAC address of the interface. Quote it in YAML.
    type: str
    required: true
  state:
    description: Link state to set, V(up) (cable plugged) or V(down) (cable pulled).
    type: str
    choices: [up, down]
    required: true
  restore_after_s:
    description:
      - Hold the link in O(state) for this many seconds, then set it back to what it was, all in this
        one call, as a cable pulled and plugged back in. The controller has nothing else to do while
        the guest reacts to the change, which matters when the guest is emulated and shares the
        controller's CPUs.
      - The link is set back even when the wait is interrupted. Nothing is held when the link was in
        O(state) already.
      - A number of seconds greater than 0, for example V(3).
    type: float
  after_traffic_pps:
    description:
      - Before the change, wait until the interface carries at least this many packets per second, sent
        and received together, by libvirt's statistics of the domain's interface (measured over half-second
        windows). A measurement started on the guest just before (a ping every 10 ms is 200 packets a
        second both ways) then has its traffic flowing when the cable is pulled, however long the guest
        took to start it.
      - When the rate is not reached within O(traffic_wait_s), the module fails and changes nothing.
      - In check mode nothing is waited for.
    type: int
  traffic_wait_s:
    description: With O(after_traffic_pps), how long to wait for the traffic, in seconds.
    type: float
    default: 120
  lead_s:
    description: With O(after_traffic_pps), how long the traffic flows before the change, in seconds.
    type: float
    default: 0
  owner:
    description:
      - When given, the domain must carry this owner in its aicluster.lab metadata (as
        M(aicluster.lab.libvirt_domain) records it); a domain with another owner or without owner
        metadata is refused before any change.
      - When omitted, the owner is not checked.
    type: str
notes:
  - Supports C(check_mode) (reads the live state, changes nothing) and C(diff_mode) (the link state
    before and after).
  - Operates on the live domain only. Restarting the domain brings every link back up.
seealso:
  - module: aicluster.lab.libvirt_domain
  - module: aicluster.lab.reachability_watch
'''

EXAMPLES = r'''
- name: Pull the cable of node2's third NIC
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    owner: aicluster.lab/aiclab
    mac: "52:54:00:ec:60:0e"
    state: down
  register: pulled

- name: Plug it back in
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    mac: "52:54:00:ec:60:0e"
    state: up
  register: plugged

- name: Pull the same cable for 3 s and plug it back, in one call
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    mac: "52:54:00:ec:60:0e"
    state: down
    restore_after_s: 3
  register: pulse

- name: Pull it for 3 s once a measurement's traffic has flowed for 2 s (started beside a probe on the guest)
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    mac: "52:54:00:ec:60:0e"
    state: down
    restore_after_s: 3
    after_traffic_pps: 100
    lead_s: 2
  async: 300
  poll: 0
  register: cut_job

- name: How long the cable was out, on the controller's clock
  ansible.builtin.debug:
    msg: "{{ (pulse.restored_time - pulse.time) | round(3) }} s"

- name: The same from two separate calls
  ansible.builtin.debug:
    msg: "{{ (plugged.time - pulled.time) | round(3) }} s"
'''

RETURN = r'''
traffic:
  description: >-
    With O(after_traffic_pps), the traffic seen before the change: C(pps) (packets per second in the
    window that reached the rate), C(waited_s) (from the start of the wait) and C(time) (epoch, controller clock).
  returned: when O(after_traffic_pps) was given and the link was changed
  type: dict
  sample: {pps: 196.0, waited_s: 4.52, time: 1764583201.25}
previous:
  description: Live link state before the run.
  returned: success
  type: str
  sample: up
state:
  description:
    - Live link state after the run (in check mode, as it would be).
    - With O(restore_after_s), the state the link was held in before it was set back.
  returned: success
  type: str
  sample: down
restored_time:
  description: With O(restore_after_s), epoch time just after the link was set back (controller clock).
  returned: when O(restore_after_s) was given and the link was changed
  type: float
  sample: 1795329387.533
time:
  description:
    - Epoch time (float, the clock of the host the module runs on) just after libvirt applied the
      change, which is when the guest lost or regained its carrier.
    - Without a change (or in check mode), the time the live state was read.
  returned: success
  type: float
  sample: 1795329384.512
interface:
  description: The interface, as the live XML describes it.
  returned: success
  type: dict
  contains:
    mac:
      description: MAC address, lower case.
      type: str
      sample: "52:54:00:ec:60:0e"
    type:
      description: Interface type (network, bridge, direct, ...).
      type: str
      sample: network
    target:
      description: Host side device (tap), null when libvirt reports none.
      type: str
      sample: vnet5
    network:
      description: libvirt network of a C(type=network) interface, else null.
      type: str
      sample: aiclab-trunk
    bridge:
      description: Host bridge the interface is plugged into, null when none.
      type: str
      sample: aiclab-trunk
    model:
      description: NIC model, null when libvirt reports none.
      type: str
      sample: virtio
'''

import copy
import time
import xml.etree.ElementTree as ET

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_conn import connect, lookup_domain
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import SpecError, normalize_mac, read_owner

# The window over which after_traffic_pps is measured: long enough that a burst of
# ARP or neighbour discovery is not a measurement's traffic.
TRAFFIC_WINDOW_S = 0.5

try:
    import libvirt
except ImportError:
    libvirt = None  # connect() reports the missing library.


def interface_info(iface):
    source = iface.find('source')
    source = source.attrib if source is not None else {}
    kind = iface.get('type')
    target = iface.find('target')
    model = iface.find('model')
    return {
        'mac': iface.find('mac').get('address').lower(),
        'type': kind,
        'target': target.get('dev') if target is not None else None,
        'network': source.get('network') if kind == 'network' else None,
        'bridge': source.get('bridge'),
        'model': model.get('type') if model is not None else None,
    }


def link_state(iface):
    link = iface.find('link')
    return (link.get('state') if link is not None else None) or 'up'


def find_interface(root, mac):
    """The ``<interface>`` with ``mac`` and the list of every MAC the domain has."""
    found, macs = None, []
    for iface in root.findall('devices/interface'):
        elem = iface.find('mac')
        address = elem.get('address', '').lower() if elem is not None else ''
        if address:
            macs.append(address)
        if address == mac and found is None:
            found = iface
    return found, macs


def with_link(iface, state):
    """Interface XML with ``<link state=STATE/>``, for virDomainUpdateDeviceFlags."""
    new = copy.deepcopy(iface)
    link = new.find('link')
    if link is None:
        link = ET.SubElement(new, 'link')
    link.set('state', state)
    new.tail = None
    return ET.tostring(new, encoding='unicode')


def set_link(module, conn):
    params = module.params
    name, mac, state, uri = params['name'], params['mac'], params['state'], params['uri']
    dom = lookup_domain(conn, name)
    if dom is None:
        module.fail_json(msg="name: no domain '%s' on %s" % (name, uri))
    root = ET.fromstring(dom.XMLDesc(0))
    if params['owner'] is not None:
        recorded = read_owner(root)
        if recorded is None or recorded['name'] != params['owner']:
            found = "owner '%s'" % recorded['name'] if recorded else 'no owner metadata'
            module.fail_json(msg="name: domain '%s' is not owned by %s (%s); its links are left alone"
                             % (name, params['owner'], found))
    if not dom.isActive():
        module.fail_json(msg="name: domain '%s' is not running; a link state can only be set on a running "
                             "domain" % name)
    iface, macs = find_interface(root, mac)
    if iface is None:
        module.fail_json(msg="mac: domain '%s' has no interface with MAC %s (its MACs: %s)"
                             % (name, mac, ', '.join(macs) or 'none'))
    info = interface_info(iface)
    previous = link_state(iface)
    changed = previous != state
    result = dict(changed=changed, previous=previous, state=state, interface=info)
    if module._diff:
        header = "%s %s (%s)" % (name, mac, info['target'] or info['type'])
        result['diff'] = {'before': 'link: %s\n' % previous, 'after': 'link: %s\n' % state,
                          'before_header': header, 'after_header': header}
    if not changed or module.check_mode:
        result['time'] = time.time()
        return result
    if params['after_traffic_pps']:
        if not info['target']:
            module.fail_json(msg="after_traffic_pps: interface %s of domain '%s' has no target device whose "
                                 "traffic libvirt could count" % (mac, name), **result)
        result['traffic'] = wait_for_traffic(lambda: packets(dom, info['target']), params['after_traffic_pps'],
                                             params['traffic_wait_s'])
        if result['traffic'] is None:
            module.fail_json(msg="after_traffic_pps: interface %s (%s) of domain '%s' did not carry %d packets a "
                                 "second within %g s; the link was left %s"
                                 % (mac, info['target'], name, params['after_traffic_pps'], params['traffic_wait_s'],
                                    previous), **result)
        time.sleep(params['lead_s'])
    apply_link(module, dom, iface, state, result)
    hold = params['restore_after_s']
    if hold:
        try:
            time.sleep(hold)
        finally:
            apply_link(module, dom, iface, previous, result, time_key='restored_time')
    return result


def packets(dom, target):
    """Packets the interface has carried, both directions (libvirt's rx_packets + tx_packets)."""
    stats = dom.interfaceStats(target)
    return stats[1] + stats[5]


def wait_for_traffic(read_packets, pps, timeout_s, window_s=TRAFFIC_WINDOW_S, clock=time.monotonic, sleep=time.sleep):
    """Wait until ``read_packets()`` grows by ``pps`` a second over a window; None on timeout.

    Returns {pps, waited_s, time}. The rate is taken over each window, so a burst shorter than a
    window (ARP, neighbour discovery) does not count as a measurement's traffic.
    """
    start = clock()
    last_count, last_at = read_packets(), start
    while True:
        sleep(window_s)
        count, now = read_packets(), clock()
        rate = (count - last_count) / (now - last_at) if now > last_at else 0.0
        if rate >= pps:
            return {'pps': round(rate, 1), 'waited_s': round(now - start, 2), 'time': time.time()}
        if now - start >= timeout_s:
            return None
        last_count, last_at = count, now


def apply_link(module, dom, iface, state, result, time_key='time'):
    """Set the live link state of ``iface`` and check that libvirt took it."""
    dom.updateDeviceFlags(with_link(iface, state), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    result[time_key] = time.time()
    mac = iface.find('mac').get('address').lower()
    live, dummy = find_interface(ET.fromstring(dom.XMLDesc(0)), mac)
    now = link_state(live) if live is not None else None
    if now != state:
        module.fail_json(msg="state: libvirt accepted link state %s for MAC %s of domain '%s' but the live XML "
                             "says %s" % (state, mac, dom.name(), now), **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            mac=dict(type='str', required=True),
            state=dict(type='str', required=True, choices=['up', 'down']),
            uri=dict(type='str', default='qemu:///system'),
            owner=dict(type='str'),
            restore_after_s=dict(type='float'),
            after_traffic_pps=dict(type='int'),
            traffic_wait_s=dict(type='float', default=120),
            lead_s=dict(type='float', default=0),
        ),
        supports_check_mode=True,
    )
    hold = module.params['restore_after_s']
    if hold is not None and not 0 < hold < float('inf'):
        module.fail_json(msg='restore_after_s: %r must be a number of seconds greater than 0' % hold)
    for option, low in (('after_traffic_pps', 1), ('traffic_wait_s', 0), ('lead_s', 0)):
        value = module.params[option]
        if value is not None and not low <= value < float('inf'):
            module.fail_json(msg='%s: %r must be a number of at least %s' % (option, value, low))
    try:
        module.params['mac'] = normalize_mac(module.params['mac'], 'mac')
    except SpecError as exc:
        module.fail_json(msg=str(exc))

    conn = connect(module, module.params['uri'])
    try:
        result = set_link(module, conn)
    except libvirt.libvirtError as exc:
        module.fail_json(msg="name: domain '%s': libvirt error setting the link of MAC %s %s on %s: %s"
                             % (module.params['name'], module.params['mac'], module.params['state'],
                                module.params['uri'], exc))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
