#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lab_boot_watch
short_description: Wait for lab nodes to answer on SSH, failing at once on a fatal console line
description:
  - Waits, for all nodes at once, until each answers on its SSH port with an SSH banner, while reading
    each node's serial console log as it grows.
  - A fatal line on the console of a node that has not answered yet (a kernel panic, emergency mode, the
    OOM killer, a unit the lab needs failing to start) ends the wait at once. The module fails naming the
    node, the pattern, the line, its number and the log's path, instead of waiting out O(timeout).
  - On timeout the failure names the nodes that never answered and the last lines of their consoles.
  - Each node is probed every O(interval) seconds on its own, and never again once it has answered; each
    probe that reaches sshd makes the guest fork, which an emulated guest pays dearly for.
version_added: 0.4.0
author:
  - aicluster.lab developers (@aicluster)
options:
  nodes:
    description: The nodes to wait for.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's name, used in messages and results.
        type: str
        required: true
      address:
        description: The address its SSH server listens on.
        type: str
        required: true
      console_log:
        description: Absolute path of the file its serial console writes to.
        type: path
        required: true
  port:
    description: The SSH port.
    type: int
    default: 22
  timeout:
    description: Seconds to wait for all nodes, from the module's start.
    type: int
    default: 300
  interval:
    description: Seconds between two probes of one node.
    type: float
    default: 2.0
  fatal_patterns:
    description:
      - Patterns that end the wait, each a dict with C(name) and C(regex) (Python syntax, searched in each
        console line). The default covers a kernel panic, emergency mode, the OOM killer and the failure of
        sshd, systemd-networkd, D-Bus or journald.
      - Given, they replace the default list.
    type: list
    elements: dict
notes:
  - Supports C(check_mode); it only reads and probes, so it runs the same in check mode.
seealso:
  - module: aicluster.lab.libvirt_domain
  - module: aicluster.lab.reachability_watch
'''

EXAMPLES = r'''
- name: Wait for SSH on every started node, stopping at a panic
  aicluster.lab.lab_boot_watch:
    nodes:
      - name: node1
        address: 192.168.150.11
        console_log: /var/lib/aicluster-lab/labs/aiclab/node1.console.log
      - name: node2
        address: 192.168.150.12
        console_log: /var/lib/aicluster-lab/labs/aiclab/node2.console.log
    timeout: 300
  register: booted
'''

RETURN = r'''
ssh_s:
  description: Seconds from the module's start until each node answered, by node name.
  returned: always
  type: dict
  sample: {node1: 31.4, node2: 33.0}
fatal:
  description: The fatal console line that ended the wait, or null.
  returned: always
  type: dict
  sample:
    node: node1
    pattern: kernel panic
    line_no: 401
    path: /var/lib/aicluster-lab/labs/aiclab/node1.console.log
    line: "[   18.914425] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"
waiting:
  description: The nodes that had not answered when the wait ended.
  returned: always
  type: list
  elements: str
  sample: []
elapsed_s:
  description: Seconds the wait took.
  returned: always
  type: float
  sample: 33.0
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.lab.plugins.module_utils.console_watch import (
    FATAL_PATTERNS, ConsoleWatchError, compile_patterns, failure_message, wait_for_nodes)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                address=dict(type='str', required=True),
                console_log=dict(type='path', required=True),
            )),
            port=dict(type='int', default=22),
            timeout=dict(type='int', default=300),
            interval=dict(type='float', default=2.0),
            fatal_patterns=dict(type='list', elements='dict'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params['timeout'] < 1:
        module.fail_json(msg='timeout: %s must be at least 1 second' % params['timeout'])
    if params['interval'] <= 0:
        module.fail_json(msg='interval: %s must be more than 0 seconds' % params['interval'])
    try:
        patterns = compile_patterns(params['fatal_patterns'] if params['fatal_patterns'] is not None else FATAL_PATTERNS)
    except ConsoleWatchError as exc:
        module.fail_json(msg=str(exc))
    result = wait_for_nodes(params['nodes'], patterns, params['timeout'], params['interval'], port=params['port'])
    out = dict(changed=False, ssh_s=result['up'], fatal=result['fatal'], waiting=result['waiting'],
               elapsed_s=result['elapsed_s'])
    message = failure_message(result, params['timeout'])
    if message:
        module.fail_json(msg=message, **out)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
