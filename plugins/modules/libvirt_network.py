#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_network
short_description: Define, start or remove a libvirt virtual network for a lab
description:
  - Manages one persistent libvirt network, either an isolated L2 bridge (no address, used for VLAN
    trunks), an isolated subnet with DHCP, or a NATed/routed subnet.
  - Idempotent. The desired definition and libvirt's normalised XML are both projected onto the
    options this module controls and compared, so defaults libvirt adds do not count as changes.
  - A redefinition keeps the network's UUID, its bridge MAC and, when O(bridge) is not given, the
    bridge name libvirt assigned.
  - A running network whose definition changed is destroyed and started again so the change takes
    effect; the result says so in RV(restarted), and warns about running guests attached to it.
  - Only IPv4 addressing is managed.
version_added: 0.1.0
author:
  - aicluster.lab developers (@aicluster)
requirements:
  - libvirt-python
extends_documentation_fragment:
  - aicluster.lab.libvirt
options:
  name:
    description: Name of the libvirt network.
    type: str
    required: true
  state:
    description:
      - V(present) means defined, active, autostart off.
      - V(absent) destroys and undefines the network.
    type: str
    choices: [present, absent]
    default: present
  bridge:
    description:
      - Name of the host bridge device, at most 15 characters.
      - When omitted libvirt picks one (C(virbrN)) and later runs keep it.
    type: str
  address:
    description:
      - Host-side IPv4 address of the bridge in CIDR form, for example V(192.168.150.1/24).
      - Omit it for a pure L2 bridge without an IP (no DHCP, no forwarding), as used for VLAN trunks.
    type: str
  dhcp_range:
    description: DHCP pool; needs O(address), both ends inside its subnet.
    type: dict
    suboptions:
      start:
        description: First address of the pool.
        type: str
        required: true
      end:
        description: Last address of the pool.
        type: str
        required: true
  dhcp_hosts:
    description:
      - Static DHCP leases; needs O(address). MACs, IPs and names must be unique.
    type: list
    elements: dict
    default: []
    suboptions:
      mac:
        description: Guest MAC address. Quote it in YAML.
        type: str
        required: true
      ip:
        description: Address to hand out, inside the subnet of O(address).
        type: str
        required: true
      name:
        description: Host name handed out with the lease.
        type: str
  forward:
    description:
      - V(none) is an isolated network (no forwarding off the host).
      - V(nat) and V(route) forward the subnet of O(address) to the host's uplinks.
    type: str
    choices: [none, nat, route]
    default: none
  mtu:
    description: MTU of the bridge (68 to 65535). Omit to keep libvirt's default.
    type: int
notes:
  - Supports C(check_mode) (reports what would change, touches nothing) and C(diff_mode)
    (before/after of the projected definition).
  - Restarting a network detaches the tap devices of running guests from the bridge until those
    guests are restarted; the module warns with their names.
seealso:
  - module: aicluster.lab.libvirt_domain
'''

EXAMPLES = r'''
- name: Management network with DHCP and fixed leases
  aicluster.lab.libvirt_network:
    name: lab-mgmt
    bridge: labbr-mgmt
    address: 192.168.150.1/24
    dhcp_range:
      start: 192.168.150.100
      end: 192.168.150.199
    dhcp_hosts:
      - mac: "52:54:00:15:00:11"
        ip: 192.168.150.11
        name: node1

- name: Isolated L2 bridge without IP for a VLAN trunk, jumbo frames
  aicluster.lab.libvirt_network:
    name: lab-trunk
    bridge: labbr-trunk
    mtu: 9000

- name: NATed network so guests reach package mirrors
  aicluster.lab.libvirt_network:
    name: lab-nat
    address: 192.168.151.1/24
    forward: nat

- name: Remove a network
  aicluster.lab.libvirt_network:
    name: lab-trunk
    state: absent
'''

RETURN = r'''
network:
  description: The network after the run (in check mode, as it would be). Empty dict when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: lab-mgmt
    uuid:
      description: Network UUID; null for a network that check mode would create.
      type: str
      sample: b83e90e1-f1b6-4450-8319-b7fb86580a12
    bridge:
      description: Host bridge device; null until libvirt has assigned one.
      type: str
      sample: virbr1
    active:
      description: Whether the network is running.
      type: bool
      sample: true
    address:
      description: Host-side address in CIDR form, null for a pure L2 bridge.
      type: str
      sample: 192.168.150.1/24
xml:
  description: Persistent XML definition as libvirt reports it (the desired XML in check mode).
  returned: when state=present
  type: str
restarted:
  description: True when the running network was destroyed and started to apply a changed definition.
  returned: always
  type: bool
  sample: false
changes:
  description: Projection keys that differ between the old and the new definition.
  returned: always
  type: list
  elements: str
  sample: [dhcp_hosts, mtu]
'''

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_conn import (
    connect,
    lookup_network,
    network_config_xml,
    running_domains_on_network,
)
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import (
    SpecError,
    build_network_xml,
    changed_keys,
    network_bridge_mac,
    project_network,
    render,
    validate_network_params,
)

try:
    import libvirt
except ImportError:
    libvirt = None  # connect() reports the missing library.


def _other_networks(conn, name):
    result = []
    for net in conn.listAllNetworks(0):
        if net.name() == name:
            continue
        try:
            result.append((net, project_network(net.XMLDesc(0))))
        except libvirt.libvirtError:
            continue
    return result


def _check_conflicts(conn, spec):
    """Refuse bridge names and subnets that another network already holds."""
    mine = ipaddress.IPv4Interface(spec['address']).network if spec['address'] else None
    for net, proj in _other_networks(conn, spec['name']):
        if spec['bridge'] and proj['bridge'] == spec['bridge']:
            raise SpecError("bridge: %s is already used by network '%s'" % (spec['bridge'], net.name()))
        # libvirt itself refuses to start a subnet that overlaps a running network's route.
        if mine is not None and proj['address'] and net.isActive():
            other = ipaddress.IPv4Interface(proj['address']).network
            if mine.overlaps(other):
                raise SpecError("address: %s overlaps %s of active network '%s'"
                                % (spec['address'], proj['address'], net.name()))


def _summary(spec_or_proj, uuid, active):
    return {
        'name': spec_or_proj['name'],
        'uuid': uuid,
        'bridge': spec_or_proj.get('bridge'),
        'active': active,
        'address': spec_or_proj.get('address'),
    }


def run_absent(module, conn, net):
    result = {'changed': False, 'network': {}, 'restarted': False, 'changes': []}
    if net is None:
        module.exit_json(msg='network %s is absent' % module.params['name'], **result)
    before = project_network(network_config_xml(net))
    result['changed'] = True
    result['changes'] = changed_keys(before, None)
    if module._diff:
        result['diff'] = {'before': render(before), 'after': ''}
    if not module.check_mode:
        if net.isActive():
            net.destroy()
        net.undefine()
    module.exit_json(msg='network %s %s' % (module.params['name'],
                                            'would be removed' if module.check_mode else 'removed'),
                     **result)


def run_present(module, conn, net, spec):
    name = spec['name']
    before = None
    live = None
    active = False
    autostart = False
    if net is not None:
        inactive_xml = network_config_xml(net)
        before = project_network(inactive_xml)
        active = bool(net.isActive())
        autostart = bool(net.autostart())
        if active:
            live = project_network(net.XMLDesc(0))
        # Keep what libvirt generated so a redefinition is not a different network.
        spec['uuid'] = before['uuid']
        spec['mac'] = network_bridge_mac(inactive_xml)
        if spec['bridge'] is None:
            spec['bridge'] = before['bridge']

    _check_conflicts(conn, spec)

    desired_xml = build_network_xml(spec)
    desired = project_network(desired_xml)
    compare = desired
    must_define = before is None or before != compare
    must_restart = active and live is not None and live != compare
    must_start = not active
    must_autostart_off = autostart

    changes = changed_keys(before, compare)
    actions = []
    if must_define:
        actions.append('define' if before is None else 'redefine')
    if must_restart:
        actions.append('restart')
    elif must_start:
        actions.append('start')
    if must_autostart_off:
        actions.append('autostart off')

    result = {
        'changed': bool(actions),
        'changes': changes,
        'restarted': False,
    }
    if module._diff:
        result['diff'] = {
            'before': render(before) if before else '',
            'after': render(compare),
            'before_header': '%s (libvirt)' % name,
            'after_header': '%s (desired)' % name,
        }

    if must_restart:
        guests = running_domains_on_network(conn, name)
        if guests:
            module.warn('network %s is restarted to apply its new definition; the NICs of running '
                        'domains %s are detached from its bridge until those domains restart'
                        % (name, ', '.join(guests)))

    if module.check_mode:
        result['network'] = _summary(compare, compare['uuid'], True)
        result['xml'] = desired_xml
        result['restarted'] = must_restart
        msg = 'network %s: %s' % (name, ', '.join(actions) if actions else 'no change')
        module.exit_json(msg=msg + (' (check mode)' if actions else ''), **result)

    if must_define:
        try:
            net = conn.networkDefineXML(desired_xml)
        except libvirt.libvirtError as exc:
            module.fail_json(msg='network %s: libvirt refused the definition: %s' % (name, exc),
                             xml=desired_xml, **result)
    if must_restart:
        net.destroy()
        net.create()
        result['restarted'] = True
    elif must_start:
        try:
            net.create()
        except libvirt.libvirtError as exc:
            module.fail_json(msg='network %s: defined but failed to start: %s' % (name, exc), **result)
    if must_autostart_off:
        net.setAutostart(0)

    final_xml = network_config_xml(net)
    final = project_network(final_xml)
    result['network'] = _summary(final, final['uuid'], bool(net.isActive()))
    result['xml'] = final_xml
    msg = 'network %s: %s' % (name, ', '.join(actions) if actions else 'no change')
    if result['restarted']:
        msg += ' (the running network was destroyed and started again to apply the change)'
    module.exit_json(msg=msg, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            uri=dict(type='str', default='qemu:///system'),
            bridge=dict(type='str'),
            address=dict(type='str'),
            dhcp_range=dict(type='dict', options=dict(
                start=dict(type='str', required=True),
                end=dict(type='str', required=True),
            )),
            dhcp_hosts=dict(type='list', elements='dict', default=[], options=dict(
                mac=dict(type='str', required=True),
                ip=dict(type='str', required=True),
                name=dict(type='str'),
            )),
            forward=dict(type='str', default='none', choices=['none', 'nat', 'route']),
            mtu=dict(type='int'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    spec = None
    if params['state'] == 'present':
        try:
            spec = validate_network_params(params)
        except SpecError as exc:
            module.fail_json(msg=str(exc))

    conn = connect(module, params['uri'])
    try:
        net = lookup_network(conn, params['name'])
        if params['state'] == 'absent':
            run_absent(module, conn, net)
        else:
            try:
                run_present(module, conn, net, spec)
            except SpecError as exc:
                module.fail_json(msg=str(exc))
    except libvirt.libvirtError as exc:
        module.fail_json(msg='network %s: libvirt error on %s: %s' % (params['name'], params['uri'], exc))
    finally:
        conn.close()


if __name__ == '__main__':
    main()
