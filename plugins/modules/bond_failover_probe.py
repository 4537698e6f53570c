#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: bond_failover_probe
short_description: Measure a bond failover on the node by pinging through it while watching the bond
description:
  - Runs on the node whose bond is tested. For O(duration_s) seconds it pings O(target) every
    O(interval_ms) ms with C(ping -D -n -O -i <interval> -c <count> [-I <interface>] <target>)
    (iputils), and meanwhile reads, every 2 ms, the bond's active member
    (C(/sys/class/net/<bond>/bonding/active_slave)) and the carrier of each of its members
    (C(/sys/class/net/<member>/carrier); one that cannot be read, as on a link set down, counts
    as down), noting every change with its time in RV(transitions).
  - From ping's output it finds the outages, runs of packets that got no reply, and ties the
    first change of active member away from the member active at the start (RV(failover)) and
    the first later change back to it (RV(failback)) to the outage around each.
  - Start it with C(async) and C(poll=0), cut a link while it runs (from the hypervisor, or on
    the node), then collect the result with M(ansible.builtin.async_status), see EXAMPLES.
  - It only measures, so it never reports C(changed). It fails only when it cannot measure (an
    option is refused, O(bond) is not a bond, ping could not run, the node's clock was set while
    it ran), with whatever it measured;
    judging the figures (how long a failover may take, how many packets it may lose) is the
    playbook's job.
version_added: 0.3.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  target:
    description:
      - IP address (IPv4 or IPv6) to ping, normally a peer reached through the bond (for a VLAN
        on the bond, the peer's address on that VLAN).
      - A name is refused, so that a DNS lookup cannot stall or fail the measurement.
    type: str
    required: true
  interface:
    description:
      - Interface (or source address) for C(ping -I), for example the VLAN on the bond,
        C(bond0.200). It must exist on the node when it is a name.
      - Omitted, the routing table picks it.
    type: str
  bond:
    description:
      - The bond to watch, for example C(bond0). It must exist
        (C(/sys/class/net/<bond>/bonding)).
      - Its members are read once, at the start.
    type: str
    required: true
  interval_ms:
    description:
      - Milliseconds between two pings, C(ping -i). It is also the precision of the outage
        figures, see the notes.
      - From 1 (ping cannot go finer; 0 would make it flood); 2 at least when the module does
        not run as root, since ping refuses shorter intervals to other users. At least two
        packets must fit in O(duration_s).
    type: int
    default: 10
  duration_s:
    description:
      - Seconds to ping for, a number greater than 0, for example V(12). ping sends
        O(duration_s) * 1000 / O(interval_ms) packets (C(-c)), so the run takes somewhat longer
        than this, ping's timer being late (1000 packets at 10 ms took 10.9 s on the lab).
      - A ping still running after 1.2 * O(duration_s) + 2 s (sending was held up) is stopped,
        and RV(ping_stopped) is true.
      - Give C(async) enough for this plus a few seconds.
      - With O(settle_s), this is the longest the probe runs; make it generous, the run ends
        O(settle_s) after the cut is over.
    type: float
    required: true
  settle_s:
    description:
      - End the run this many seconds after the last member that lost its carrier has it back
        (the cable is plugged back in), instead of after O(duration_s). The probe then follows the
        cut however late it comes, and takes no longer than the cut needs.
      - Give more than the bond's miimon + updelay, so that the failback falls inside the run.
      - ping is stopped with SIGINT; the packet it has in flight then is not counted as lost.
        RV(settled) says the run ended this way.
      - Omitted, the run lasts O(duration_s) whatever happens.
    type: float
  output_file:
    description:
      - Also write ping's whole output to this file on the node, for a closer look afterwards
        (RV(stdout_tail) holds only its last lines).
    type: path
notes:
  - Supports C(check_mode); it then checks the options and that the bond exists, runs nothing,
    and returns C(skipped) with a message saying what it would do.
  - "Clock: every time returned (reply arrivals, outages, transitions, events) is the node's
    wall clock in seconds since the epoch: ping's C(-D) stamps come from gettimeofday(), the
    module's from Python's time.time(), the same clock. The controller's and hypervisor's clocks
    may differ from it by seconds (the lab's guests, not synchronised, ran 4 to 6 s behind the
    host and drifting), so
    compare times within one result only, and time a cut on the node, not on the controller."
  - "Precision: a packet is lost or not, so an outage is known to a packet, O(interval_ms).
    RV(outages[].gap_ms) runs from the last reply before the lost packets to the first one after,
    so it includes one normal interval: one lost packet at 10 ms gives 20 ms or more. Times of
    transitions are when the module saw the change, up to the polling period (2 ms, see
    RV(poll.max_gap_ms) for the longest actual one) after it happened."
  - "A failover or failback with no reply missed around it has RV(failover.gap_ms) and
    RV(failover.lost) 0: there was no outage. RV(failover.reply_gap_ms) still shows whether
    replies were delayed."
  - Without ping's C(-w) on purpose, since with it ping ends at the first ICMP error (such as
    C(Destination Host Unreachable)) and the measurement with it.
  - Needs iputils ping (C(-D) and C(-O)). Linux only.
seealso:
  - module: ansible.builtin.async_status
'''

EXAMPLES = r'''
# Lab: cut node1's active member from the hypervisor while the probe runs on node1.
- name: Start the probe on node1
  aicluster.lab.bond_failover_probe:
    target: 192.168.200.12
    interface: bond0.200
    bond: bond0
    interval_ms: 10
    duration_s: 12
  async: 30
  poll: 0
  register: probe

# The module takes a second or more to start on an emulated guest.
- name: Wait until the probe's ping runs
  ansible.builtin.command: pgrep -x ping
  register: pinging
  until: pinging.rc == 0
  retries: 30
  delay: 1
  changed_when: false

- name: Pull node1's eth1 "cable" for 3 s, 1 s from now
  ansible.builtin.shell: |
    trap 'virsh domif-setlink aiclab-node1 {{ eth1_mac }} up' EXIT
    sleep 1
    virsh domif-setlink aiclab-node1 {{ eth1_mac }} down
    sleep 3
  delegate_to: localhost
  changed_when: false

- name: Collect the measurement
  ansible.builtin.async_status:
    jid: "{{ probe.ansible_job_id }}"
  register: measured
  until: measured.finished
  retries: 30
  delay: 1

- name: Judge it
  ansible.builtin.assert:
    that:
      - measured.failover is not none
      - measured.failover.gap_ms < 500
      - measured.failback is not none
    fail_msg: "failover {{ measured.failover }}, failback {{ measured.failback }}"

# Physical host: no hypervisor, so take the member down on the node itself. Run both from
# the node's side with async, the probe first.
- name: Start the probe
  aicluster.lab.bond_failover_probe:
    target: 10.0.200.12
    bond: bond0
    duration_s: 20
  async: 40
  poll: 0
  register: probe

- name: Take eth1 down for 5 s, then up again (detached, so that it survives a lost connection)
  ansible.builtin.shell: sleep 5; ip link set eth1 down; sleep 5; ip link set eth1 up
  async: 30
  poll: 0
  changed_when: true

- name: Collect the measurement
  ansible.builtin.async_status:
    jid: "{{ probe.ansible_job_id }}"
  register: measured
  until: measured.finished
  retries: 40
  delay: 1
'''

RETURN = r'''
# Samples: node1 of the lab, eth1 cut from the hypervisor for 2 s (duration_s 10).
msg:
  description: What check mode would do.
  returned: in check mode
  type: str
  sample: "check mode: would ping 192.168.200.12 every 10 ms for 10 s while watching bond0"
skipped:
  description: True in check mode, where nothing ran.
  returned: in check mode
  type: bool
  sample: true
cmd:
  description: The ping command, as run (or as it would run, in check mode).
  returned: always
  type: list
  elements: str
  sample: [ping, -D, -n, -O, -i, '0.01', -c, '1000', -I, bond0.200, 192.168.200.12]
interval_ms:
  description: O(interval_ms).
  returned: always
  type: int
  sample: 10
duration_s:
  description: O(duration_s).
  returned: always
  type: float
  sample: 10.0
start_time:
  description:
    - Node time just before ping started.
    - Not called C(started), which would make M(ansible.builtin.async_status) take the job for
      one still running.
  returned: when ping ran
  type: float
  sample: 1795331043.836561
end_time:
  description: Node time when ping had ended.
  returned: when ping ran
  type: float
  sample: 1795331055.248854
sent:
  description: Packets ping sent, from its summary.
  returned: when ping ran
  type: int
  sample: 1000
received:
  description: Packets answered, from ping's summary.
  returned: when ping ran
  type: int
  sample: 993
lost:
  description:
    - Packets never answered, the sum of RV(outages[].lost).
    - ping may send less often than O(interval_ms) while nothing gets through (on the lab, 3
      packets went missing in a 184 ms gap at 10 ms), so RV(outages[].gap_ms) is the measure
      of an outage, not this count times the interval.
  returned: when ping ran
  type: int
  sample: 7
duplicates:
  description: Duplicate replies (not counted as received twice).
  returned: when ping ran
  type: int
  sample: 0
icmp_errors:
  description: Packets answered by an ICMP error (such as C(Destination Host Unreachable)) instead
    of a reply; they are lost.
  returned: when ping ran
  type: int
  sample: 0
outages:
  description: Runs of consecutive packets that got no reply, in order.
  returned: when ping ran
  type: list
  elements: dict
  sample:
    - {first_seq: 396, last_seq: 401, lost: 6, start: 1795331048.441919, end: 1795331048.561913,
       gap_ms: 119.994, resumed: true}
    - {first_seq: 605, last_seq: 605, lost: 1, start: 1795331050.614854, end: 1795331050.647304,
       gap_ms: 32.45, resumed: true}
  contains:
    first_seq:
      description: First sequence number without a reply.
      type: int
    last_seq:
      description: Last sequence number of the run.
      type: int
    lost:
      description: Packets in the run.
      type: int
    start:
      description: Arrival of the last reply before the run (RV(start_time) when the run begins
        with the first packet).
      type: float
    end:
      description: Arrival of the first reply after the run; RV(end_time) when replies never resumed.
      type: float
    gap_ms:
      description: (end - start) * 1000, the time without replies, one normal interval included.
      type: float
    resumed:
      description: False when no reply came after the run up to the end of the measurement.
      type: bool
max_gap_ms:
  description: The longest time without a reply, the largest RV(outages[].gap_ms) or, when
    longer, the longest time between two consecutive replies (replies delayed, none lost).
    A little over O(interval_ms) when nothing happened, but the lab's guests stall now and then
    for up to 100 ms without losing anything.
  returned: when ping ran
  type: float
  sample: 119.994
transitions:
  description: Every change seen in the bond while ping ran, in order.
  returned: when ping ran
  type: list
  elements: dict
  sample:
    - {time: 1795331048.459859, kind: carrier, link: eth1, from: 1, to: 0}
    - {time: 1795331048.528012, kind: active, link: bond0, from: eth1, to: eth2}
    - {time: 1795331050.535834, kind: carrier, link: eth1, from: 0, to: 1}
    - {time: 1795331050.635321, kind: active, link: bond0, from: eth2, to: eth1}
  contains:
    time:
      description: Node time of the poll that saw the change.
      type: float
    kind:
      description: V(active) (the bond's active member changed) or V(carrier) (a member's
        carrier changed).
      type: str
    link:
      description: The bond for V(active), the member for V(carrier).
      type: str
    from:
      description: The previous active member (null for none), or carrier 1 or 0.
      type: raw
    to:
      description: The new active member (null for none), or carrier 1 or 0.
      type: raw
bond:
  description: The bond as it was at the start, from sysfs.
  returned: always
  type: dict
  contains:
    name:
      description: O(bond).
      type: str
      sample: bond0
    mode:
      description: Bonding mode.
      type: str
      sample: active-backup
    miimon:
      description: MII polling interval, ms.
      type: int
      sample: 100
    updelay:
      description: ms a member's link must be up before it is used.
      type: int
      sample: 0
    downdelay:
      description: ms a member's link must be down before it is dropped.
      type: int
      sample: 0
    primary:
      description: Primary member, null when none is set.
      type: str
      sample: eth1
    active:
      description: Active member at the start, null when none (or not an active-backup bond).
      type: str
      sample: eth1
    members:
      description: The bond's members, read once at the start.
      type: list
      elements: str
      sample: [eth1, eth2]
    carrier:
      description: Carrier of each member at the start, 1 or 0.
      type: dict
      sample: {eth1: 1, eth2: 1}
failover:
  description:
    - The first change of active member away from the one active at the start; null when there
      was none.
    - Its figures are those of the outage overlapping it, or else of the first outage beginning
      within 1 s after it; RV(failover.gap_ms) and RV(failover.lost) are 0 when no reply was
      missed around it.
  returned: when ping ran
  type: dict
  contains:
    time:
      description: Node time the change was seen.
      type: float
      sample: 1795331048.528012
    from:
      description: Member active before.
      type: str
      sample: eth1
    to:
      description: Member active after (null when none was left).
      type: str
      sample: eth2
    carrier_lost_at:
      description: When the member left lost its carrier; null when its carrier had not dropped
        (the bond changed for another reason), as for a failback.
      type: float
      sample: 1795331048.459859
    carrier_up_at:
      description: When the member taken got its carrier back; null when it had not dropped, as
        for a failover.
      type: float
      sample: null
    detect_ms:
      description: From the carrier change that caused the event to the change of active member,
        ms; for a failover from C(carrier_lost_at), for a failback from C(carrier_up_at). It holds
        the bond's MII polling (up to C(miimon)) and C(downdelay) or C(updelay). Null when that
        carrier change was not seen.
      type: float
      sample: 68.153
    gap_ms:
      description: RV(outages[].gap_ms) of the outage around the event, 0 when there is none.
      type: float
      sample: 119.994
    lost:
      description: Packets lost in that outage, 0 when there is none.
      type: int
      sample: 6
    resumed:
      description: False when replies never came back after that outage.
      type: bool
      sample: true
    reply_gap_ms:
      description: The time between the last reply before the event and the first one after it,
        ms; about O(interval_ms) when replies went on undisturbed. Null without a reply on both
        sides.
      type: float
      sample: 119.994
failback:
  description: The first change back to the member active at the start, after the failover;
    null when there was none. Keys as RV(failover).
  returned: when ping ran
  type: dict
  sample:
    time: 1795331050.635321
    from: eth2
    to: eth1
    carrier_lost_at: null
    carrier_up_at: 1795331050.535834
    detect_ms: 99.487
    gap_ms: 32.45
    lost: 1
    resumed: true
    reply_gap_ms: 32.45
poll:
  description: How the bond was watched.
  returned: when ping ran
  type: dict
  contains:
    period_ms:
      description: The polling period aimed at.
      type: float
      sample: 2.0
    count:
      description: Polls made.
      type: int
      sample: 4393
    max_gap_ms:
      description: The longest time between two polls; a transition is seen at most this late.
      type: float
      sample: 66.262
ping_rc:
  description: ping's exit code, 0 when any reply came, 1 when none did, 2 on an error.
  returned: when ping ran
  type: int
  sample: 0
ping_stopped:
  description: True when ping was still running 1.2 * O(duration_s) + 2 s after the start and
    was stopped.
  returned: when ping ran
  type: bool
  sample: false
settled:
  description: True when the run ended O(settle_s) after the links came back, not at the end of
    O(duration_s).
  returned: when ping ran
  type: bool
  sample: true
clock_step_ms:
  description:
    - How far the node's wall clock was set while the probe ran (its advance less that of the
      monotonic clock), in ms; a few tenths when nothing set it.
    - Beyond 50 ms either way the module fails, since the times of the run, and the gaps taken
      from them, are then wrong.
  returned: when ping ran
  type: float
  sample: 0.107
stdout_tail:
  description: The last lines of ping's output.
  returned: when ping ran
  type: list
  elements: str
  sample:
    - "[1795331055.165978] 64 bytes from 192.168.200.12: icmp_seq=1000 ttl=64 time=0.841 ms"
    - ""
    - "--- 192.168.200.12 ping statistics ---"
    - "1000 packets transmitted, 993 received, 0.7% packet loss, time 10929ms"
    - "rtt min/avg/max/mdev = 0.466/1.161/23.850/1.089 ms"
stderr_tail:
  description: "The last lines ping wrote to stderr (such as C(ping: sendmsg: Network is unreachable))."
  returned: when ping ran
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.failover_probe import (
    ProbeError,
    bond_state,
    ping_command,
    run_probe,
    validate,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type='str', required=True),
            interface=dict(type='str'),
            bond=dict(type='str', required=True),
            interval_ms=dict(type='int', default=10),
            duration_s=dict(type='float', required=True),
            output_file=dict(type='path'),
            settle_s=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    common = dict(changed=False, interval_ms=params['interval_ms'], duration_s=params['duration_s'])
    try:
        validate(params['target'], params['bond'], params['interface'], params['interval_ms'],
                 params['duration_s'], settle_s=params['settle_s'])
    except ProbeError as exc:
        module.fail_json(msg=exc.msg, **common)
    state = bond_state(params['bond'])
    if state['mode'] != 'active-backup':
        module.warn('%s is in mode %s, which has no active member: failover and failback stay null'
                    % (params['bond'], state['mode']))
    if module.check_mode:
        module.exit_json(skipped=True, bond=state,
                         cmd=ping_command(params['target'], params['interval_ms'], params['duration_s'],
                                          params['interface']),
                         msg='check mode: would ping %s every %d ms for %g s while watching %s'
                             % (params['target'], params['interval_ms'], params['duration_s'], params['bond']),
                         **common)
    try:
        result = run_probe(params['target'], params['bond'], params['interval_ms'], params['duration_s'],
                           interface=params['interface'], output_file=params['output_file'],
                           settle_s=params['settle_s'])
    except ProbeError as exc:
        exc.result.update(common)
        module.fail_json(msg=exc.msg, **exc.result)
    if result['ping_stopped']:
        module.warn('ping was still running %g s after the start and was stopped; its sending was held up'
                    % (result['end_time'] - result['start_time']))
    result.update(common)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
