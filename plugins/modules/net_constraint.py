#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: net_constraint
short_description: Degrade a link like a bad network with tc netem (delay, jitter, loss) and tbf (rate)
description:
  - Sets the root qdisc of O(interface) so that the packets it sends are delayed, dropped or
    rate limited, to test how a cluster behaves over a bad network. Only the egress of this host
    is affected, so a ping from it sees its round trip grow by about O(delay_ms).
  - "With O(rate_mbit) only: a root C(tbf) (handle C(2:)). With O(delay_ms) or O(loss_percent):
    a root C(netem) (handle C(1:)), and with O(rate_mbit) as well a C(tbf) (handle C(10:)) under
    its class C(1:1): netem delays and drops, then the tbf paces what netem releases."
  - Every change is a C(tc qdisc replace) (or a C(tc qdisc del)). The module reads
    C(tc -j qdisc show dev <interface>) first and changes nothing when the qdiscs there already
    apply the wanted values, within tc's rounding (about 1 us for times, 1 byte for bursts, 6 significant digits for loss).
  - O(state=absent) deletes the root qdisc when it is a netem or a tbf, which brings back the
    kernel's default. On a default root (C(noqueue), C(pfifo_fast), C(fq_codel), C(mq)) there
    is nothing to remove.
  - A root qdisc of another kind (C(htb), C(prio), C(cake), ...) belongs to something else. The
    module then fails, naming the interface and the kind, and leaves it as it is, unless
    O(force=true), with which it is replaced (O(state=present)) or deleted (O(state=absent)).
  - All values are checked before anything changes; an error names the option and the value.
version_added: 0.3.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  interface:
    description:
      - The interface whose egress is constrained, for example C(bond0.200). It must exist.
    type: str
    required: true
  state:
    description:
      - V(present) applies the constraint, V(absent) removes it (the other options but
        O(interface) and O(force) are then ignored).
    type: str
    choices: [present, absent]
    default: present
  delay_ms:
    description:
      - Delay added to every packet, in milliseconds (precision 1 us). V(0) adds none.
    type: float
    default: 0
  jitter_ms:
    description:
      - Random variation of the delay, in milliseconds, uniform over O(delay_ms) +/- O(jitter_ms).
      - Needs O(delay_ms) > 0.
      - netem sends each packet when its own delay is over, so jitter reorders packets sent less
        than O(jitter_ms) apart; a TCP stream over it sees reordering, not only delay.
    type: float
    default: 0
  loss_percent:
    description:
      - Share of the packets dropped at random, 0 to 100.
      - netem drops packets as the stack hands them over; with segmentation offload a TCP
        "packet" is up to 64 KiB, so a bulk transfer loses bursts of segments.
    type: float
    default: 0
  rate_mbit:
    description:
      - Rate limit in Mbit/s (1 Mbit = 1,000,000 bits), counted on the frames (with their
        link header), so TCP payload reaches about 95 % of it over a 1500 byte MTU.
      - Not set, no rate limit.
    type: float
  burst_kbit:
    description:
      - Size of the tbf's token bucket, in kbit (1 kbit = 125 bytes). Needs O(rate_mbit).
      - Not set, the bucket holds 5 ms of the rate and at least two frames of the interface's
        MTU (plus 18 bytes of link header), enough for TCP to reach the rate in a virtual machine
        whose timers fire late. The tbf queue holds O(delay_ms) + O(jitter_ms) of the rate, at
        least 50 ms, and the netem's packet limit grows from 1000 to what its delay line and
        the tbf queue hold at the rate, counted in full frames.
    type: float
  force:
    description:
      - Replace (V(present)) or delete (V(absent)) a root qdisc of a kind this module does not
        manage (anything but netem, tbf and the kernel's defaults) instead of failing.
    type: bool
    default: false
notes:
  - "Supports C(check_mode) (reads the qdiscs and reports the commands it would run) and
    C(diff_mode) (the constraint before and after as text, for example
    C(bond0.200: delay 20ms loss 2% rate 100mbit))."
  - Needs C(tc) with JSON output (read as iproute2 6.1, Debian 12, prints it) and the
    C(sch_netem) and C(sch_tbf) kernel modules. The qdiscs are not persistent; they go with a reboot or when the interface
    is deleted.
  - netem settings this module does not make (duplicate, reorder, corrupt, correlations, its
    own rate, ...) found on the root make it rebuild the qdisc (delete, then add), since a
    replace keeps them.
seealso:
  - name: tc-netem(8)
    description: The netem qdisc.
    link: https://man7.org/linux/man-pages/man8/tc-netem.8.html
  - name: tc-tbf(8)
    description: The token bucket filter.
    link: https://man7.org/linux/man-pages/man8/tc-tbf.8.html
'''

EXAMPLES = r'''
- name: A WAN-like cluster link, 40 ms +/- 5 ms one way
  aicluster.lab.net_constraint:
    interface: bond0.200
    delay_ms: 40
    jitter_ms: 5

- name: A congested storage link
  aicluster.lab.net_constraint:
    interface: bond0.100
    delay_ms: 20
    loss_percent: 2
    rate_mbit: 100
  register: constraint

- name: Back to the plain link
  aicluster.lab.net_constraint:
    interface: bond0.200
    state: absent

- name: Remove whatever root qdisc is there, even a foreign one
  aicluster.lab.net_constraint:
    interface: eth1
    state: absent
    force: true
'''

RETURN = r'''
interface:
  description: The interface.
  returned: always
  type: str
  sample: bond0.200
before:
  description:
    - The constraint before the run, as read from tc. A root of a kind this module does not
      manage shows only in RV(before.kinds).
  returned: always
  type: dict
  contains:
    delay_ms:
      description: Delay in ms (0 without).
      type: float
      sample: 20.0
    jitter_ms:
      description: Jitter in ms (0 without).
      type: float
      sample: 0.0
    loss_percent:
      description: Random loss in % (0 without).
      type: float
      sample: 2.0
    rate_mbit:
      description: Rate of the tbf in Mbit/s; null without one.
      type: float
      sample: 100.0
    kinds:
      description:
        - Kinds of the root qdisc and of its child under class 1, root first.
        - Empty in RV(after) of a check-mode removal, where the kernel picks its default.
      type: list
      elements: str
      sample: [netem, tbf]
  sample: {delay_ms: 0.0, jitter_ms: 0.0, loss_percent: 0.0, rate_mbit: null, kinds: [noqueue]}
after:
  description:
    - The constraint after the run, read back from tc; in check mode the one the commands would
      make. Same keys as RV(before).
  returned: always
  type: dict
  sample: {delay_ms: 20.0, jitter_ms: 0.0, loss_percent: 2.0, rate_mbit: 100.0, kinds: [netem, tbf]}
commands:
  description: The tc command lines (argv) run, or in check mode those that would run; empty when nothing changed.
  returned: always
  type: list
  elements: list
  sample:
    - [tc, qdisc, replace, dev, bond0.200, root, handle, '1:', netem, limit, '1000', delay, 20000us, loss, 2%]
    - [tc, qdisc, replace, dev, bond0.200, parent, '1:1', handle, '10:', tbf, rate, 100000000bit,
       burst, 62500b, latency, 50000us]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.tc_constraint import (
    ConstraintError,
    ensure,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            delay_ms=dict(type='float', default=0),
            jitter_ms=dict(type='float', default=0),
            loss_percent=dict(type='float', default=0),
            rate_mbit=dict(type='float'),
            burst_kbit=dict(type='float'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = ensure(module.params, check_mode=module.check_mode, diff=module._diff)
    except ConstraintError as exc:
        exc.result.setdefault('interface', module.params['interface'])
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
