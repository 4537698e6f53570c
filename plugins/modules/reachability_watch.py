#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: reachability_watch
short_description: Watch hosts with TCP connect probes and record when each is lost and back
description:
  - Probes every target with a TCP connect to O(targets[].address):O(targets[].port) every
    O(interval_ms) milliseconds, from the host the module runs on, and records when each target
    becomes unreachable and when it is reachable again. Meant to time failover gaps from the
    controller, C(delegate_to) localhost and started with C(async) and C(poll=0) before the fault is
    injected, then collected with M(ansible.builtin.async_status).
  - A probe succeeds when the connection is established (it is closed at once). It fails when it is
    refused, when the network reports an error, or when it is not established within O(timeout_ms).
  - All targets are probed at every tick at the same time (non-blocking connects in one selector),
    and a probe waiting for its timeout does not hold back the next tick, so each target is sampled
    every O(interval_ms) however many of them are dead.
  - O(lost_after) consecutive failed probes declare a target lost; the first successful probe after
    that declares it back. A target that is unreachable from the start is declared lost the same way.
  - The watch ends after O(duration_s) seconds or as soon as O(stop_file) exists, whichever comes
    first. Probes still in flight then are not counted.
  - All times are epoch seconds on the clock of the host the module runs on, the same clock
    RV(aicluster.lab.libvirt_link#module:time) uses when that runs there too.
version_added: 0.3.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  targets:
    description: The hosts to watch.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the target in RV(targets); must be unique.
        type: str
        required: true
      address:
        description: IP address or host name (resolved once, at the start).
        type: str
        required: true
      port:
        description: TCP port to connect to.
        type: int
        default: 22
  interval_ms:
    description: Milliseconds between two probes of a target (at least 10).
    type: int
    default: 200
  timeout_ms:
    description: Milliseconds a probe waits for the connection before it counts as failed.
    type: int
    default: 500
  lost_after:
    description: Number of consecutive failed probes that declare a target lost.
    type: int
    default: 3
  duration_s:
    description:
      - Seconds the watch lasts. Give this, O(stop_file) or both.
      - With C(async), give the task an C(async) limit beyond this, or the job is killed before it
        reports anything.
    type: float
  stop_file:
    description:
      - The watch ends as soon as this file exists, which lets a playbook stop it (C(ansible.builtin.file
        state=touch)). It must not exist when the watch starts. The module does not remove it.
      - It is looked for at every tick.
    type: path
  result_file:
    description: Also write the result as JSON to this file (written whole, at the end).
    type: path
  refused_is_up:
    description:
      - Count a refused connection as an answer. The refusal (a TCP reset) comes from the
        target's kernel, so probing a closed port this way proves the host and its network up
        without waking any program on it.
      - Probing an open port such as SSH every few hundred ms makes sshd fork a child per probe,
        which on an emulated guest costs enough CPU to make the guest itself miss probes.
    type: bool
    default: false
notes:
  - Supports C(check_mode) by validating the options and resolving the addresses without probing.
  - Never changes anything; C(changed) is always false.
  - Each successful probe is a connection the target accepts and sees closed, so a target's sshd logs
    one closed connection per probe.
  - A guest whose vCPU stalls (TCG emulation on a busy host) answers late, which looks like a short
    outage of a host nobody touched. When hosts left alone show RV(targets.blips) or outages of about
    O(lost_after) probes, raise O(timeout_ms) or O(lost_after).
seealso:
  - module: aicluster.lab.libvirt_link
'''

EXAMPLES = r'''
- name: Watch both nodes from the controller while node2's management link is cut
  aicluster.lab.reachability_watch:
    targets:
      - {name: node1, address: 192.168.150.11}
      - {name: node2, address: 192.168.150.12}
    interval_ms: 200
    timeout_ms: 500
    duration_s: 60
    stop_file: /tmp/aiclab-watch.stop
  delegate_to: localhost
  async: 90
  poll: 0
  register: watch_job

- name: Pull node2's management cable for five seconds
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    mac: "52:54:00:74:55:83"
    state: down
  delegate_to: localhost
  register: pulled

- name: Wait
  ansible.builtin.pause:
    seconds: 5

- name: Plug it back
  aicluster.lab.libvirt_link:
    name: aiclab-node2
    mac: "52:54:00:74:55:83"
    state: up
  delegate_to: localhost

- name: Wait until node2 answers again (its DHCP lease may have to be renewed first)
  ansible.builtin.wait_for:
    host: 192.168.150.12
    port: 22
    timeout: 60
  delegate_to: localhost

- name: Stop the watch
  ansible.builtin.file:
    path: /tmp/aiclab-watch.stop
    state: touch
    mode: "0644"
  delegate_to: localhost

- name: Collect the watch
  ansible.builtin.async_status:
    jid: "{{ watch_job.ansible_job_id }}"
  delegate_to: localhost
  register: watch
  until: watch.finished
  retries: 30
  delay: 1

- name: Time from pulling the cable to the controller noticing
  ansible.builtin.debug:
    msg: "{{ (watch.targets.node2.transitions | selectattr('state', 'eq', 'lost') | first).time - pulled.time }}"
'''

RETURN = r'''
targets:
  description: Per target name, what the watch saw.
  returned: always
  type: dict
  contains:
    address:
      description: The address probed.
      type: str
      sample: 192.168.150.12
    port:
      description: The port probed.
      type: int
      sample: 22
    reachable_at_start:
      description: Whether the first probe succeeded; null when no probe completed (check mode).
      type: bool
      sample: true
    reachable_at_end:
      description: Whether the last completed probe succeeded; null when no probe completed.
      type: bool
      sample: true
    lost_at_end:
      description: Whether the target was declared lost and not back when the watch ended.
      type: bool
      sample: false
    transitions:
      description: The changes of state, in time order.
      type: list
      elements: dict
      contains:
        state:
          description: V(lost) or V(back).
          type: str
          sample: lost
        time:
          description:
            - For V(lost), when the O(lost_after)-th consecutive failed probe failed (its timeout
              expired or the connection was refused), which is the moment the watch knew.
            - For V(back), when the first successful probe after it connected.
          type: float
          sample: 1795330000.734
        first_failed_at:
          description: When the first failed probe of this outage was sent.
          type: float
          sample: 1795330000.034
        last_ok_at:
          description:
            - When the last successful probe before the outage was sent; null if none was. The outage
              began between this time and RV(targets.transitions.first_failed_at).
          type: float
          sample: 1795329999.835
        failed_probes:
          description: Consecutive failed probes so far (V(lost)) or in the whole outage (V(back)).
          type: int
          sample: 3
        error:
          description: Why the probe that declared it lost failed (V(timeout), V(ECONNREFUSED), ...).
          returned: for lost
          type: str
          sample: timeout
        lost_s:
          description: Length of the outage, from RV(targets.transitions.first_failed_at) to this time.
          returned: for back
          type: float
          sample: 5.612
    probes:
      description: Probes completed.
      type: int
      sample: 100
    failures:
      description: Probes that failed.
      type: int
      sample: 28
    blips:
      description: Runs of failed probes too short (fewer than O(lost_after)) to declare the target lost.
      type: int
      sample: 0
    lost_s_total:
      description:
        - Seconds the target was unreachable, summed over its outages, each from its first failed
          probe to the first successful one (to the end of the watch for one still open).
      type: float
      sample: 5.612
started_at:
  description:
    - Epoch time the watch started.
    - Not called C(started), which M(ansible.builtin.async_status) would take for its own flag of a
      job still running.
  returned: always
  type: float
  sample: 1795329990.001
ended_at:
  description: Epoch time the watch ended.
  returned: always
  type: float
  sample: 1795330010.002
stopped_by:
  description: V(duration), V(stop_file), or V(check_mode).
  returned: always
  type: str
  sample: stop_file
interval_ms:
  description: Milliseconds between probes.
  returned: always
  type: int
  sample: 200
timeout_ms:
  description: Milliseconds a probe waited at most.
  returned: always
  type: int
  sample: 500
lost_after:
  description: Consecutive failed probes that declared a target lost.
  returned: always
  type: int
  sample: 3
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.reachability import (
    ReachabilityError,
    Tracker,
    validate,
    watch,
    write_result,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                address=dict(type='str', required=True),
                port=dict(type='int', default=22),
            )),
            interval_ms=dict(type='int', default=200),
            timeout_ms=dict(type='int', default=500),
            lost_after=dict(type='int', default=3),
            duration_s=dict(type='float'),
            stop_file=dict(type='path'),
            result_file=dict(type='path'),
            refused_is_up=dict(type='bool', default=False),
        ),
        required_one_of=[('duration_s', 'stop_file')],
        supports_check_mode=True,
    )
    params = module.params
    try:
        targets = validate(params)
    except ReachabilityError as exc:
        module.fail_json(msg=str(exc))
    settings = dict(interval_ms=params['interval_ms'], timeout_ms=params['timeout_ms'],
                    lost_after=params['lost_after'])
    if module.check_mode:
        now = time.time()
        empty = Tracker(params['lost_after']).summary(now)
        module.exit_json(changed=False, started_at=now, ended_at=now, stopped_by='check_mode',
                         targets=dict((t['name'], dict(address=t['address'], port=t['port'], **empty))
                                      for t in targets),
                         **settings)
    try:
        result = watch(targets, duration_s=params['duration_s'], stop_file=params['stop_file'],
                       refused_is_up=params['refused_is_up'], **settings)
    except (OSError, IOError) as exc:
        module.fail_json(msg='the watch failed on this host: %s' % exc)
    result.update(settings)
    if params['result_file']:
        try:
            write_result(params['result_file'], result)
        except (OSError, IOError) as exc:
            module.fail_json(msg='result_file: cannot write %s: %s' % (params['result_file'], exc), **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
