#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: network_confirm
short_description: Confirm a network change applied by network_apply, or report its rollback
description:
  - Confirms a change applied by M(aicluster.lab.network_apply), which disarms the rollback the
    host armed for it. Run it over a new connection (after C(meta reset_connection)), so that a
    successful run proves the controller still reaches the host as its network is now.
  - Confirming creates C(<state_dir>/<change_id>/confirmed) and stops the sleeping rollback
    process, after checking from C(/proc/<pid>/cmdline) that the pid is still that process.
    Confirming a confirmed change changes nothing.
  - "When the change was already rolled back, the module fails with the message
    C(change X was rolled back N s after it was applied: the host lost its connection to the
    controller) and returns the rollback's record in RV(rollback)."
  - With O(wait_rolled_back=true) it never confirms. It waits until the change's rollback has
    run (at most until the rollback deadline plus 60 s), then fails with that message and the
    record; it succeeds with RV(status=confirmed) when the change had been confirmed. A play uses
    this after it lost the host and got it back, to report what the host did.
  - Finished changes beyond the last five are removed from O(state_dir).
version_added: 0.2.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  change_id:
    description: The change, as RV(aicluster.lab.network_apply#module:change_id) returned it.
    type: str
    required: true
  state_dir:
    description: The O(aicluster.lab.network_apply#module:state_dir) the change was applied with.
    type: path
    default: /var/lib/aicluster-lab/network
  reconnect_within:
    description:
      - Seconds to keep trying new connections (handled by the action plugin on the controller).
      - When set, the action drops the current connection and runs the module over new ones until
        one gets through; the first that reaches the host confirms, so reaching the host and
        confirming are one round trip. A try that cannot connect is retried after 2 s; the last
        try may end up to one SSH connect timeout after the window.
      - When no connection gets through in time, the task fails with RV(status=unreachable) and
        RV(reconnected=false), and the host's rollback restores its previous network.
      - Unset, the module runs once over the current connection.
    type: float
    version_added: 0.4.0
  wait_rolled_back:
    description:
      - V(false) confirms the change.
      - V(true) only waits for and reports the rollback, see above.
    type: bool
    default: false
notes:
  - Supports C(check_mode) (reports whether it would confirm; changes and waits for nothing).
  - Runs through an action plugin of the same name, which handles O(reconnect_within).
  - A change whose rollback process is gone without a record (the host rebooted) is confirmed,
    with a warning, since its files are in place and the host is reachable; with
    O(wait_rolled_back=true) it fails with RV(status=stale).
seealso:
  - module: aicluster.lab.network_apply
'''

EXAMPLES = r'''
- name: Confirm the change from a new connection
  aicluster.lab.network_confirm:
    change_id: "{{ applied.change_id }}"

- name: Confirm over the first new connection that gets through within 90 s
  aicluster.lab.network_confirm:
    change_id: "{{ applied.change_id }}"
    reconnect_within: 90
  register: confirmed

- name: After the host came back, read what its rollback did
  aicluster.lab.network_confirm:
    change_id: "{{ applied.change_id }}"
    wait_rolled_back: true
  register: rollback
  failed_when: false
'''

RETURN = r'''
change_id:
  description: The change.
  returned: always
  type: str
  sample: 20250101T120000.123Z-a1b2c3
status:
  description:
    - V(confirmed) (now, or before), V(rolled_back), V(pending) (check mode, or waiting timed out),
      V(unreachable) (no new connection within O(reconnect_within)),
      V(aborted) (network_apply could not arm it, nothing was applied), V(stale) or V(abandoned)
      (never confirmed, rollback process gone), V(unknown) (no such change).
  returned: always
  type: str
  sample: confirmed
confirmed_after_s:
  description: Seconds between arming and confirming.
  returned: when confirmed
  type: float
  sample: 7.412
confirmed_after_effective_s:
  description:
    - Seconds between the change taking effect (network_apply's reload returned) and confirming it; the
      confirm window counts from that moment.
  returned: when confirmed by this call, for a change network_apply marked effective
  type: float
  sample: 3.108
  version_added: 0.4.0
reconnected:
  description: Whether a new connection reached the host within O(reconnect_within).
  returned: when O(reconnect_within) is set
  type: bool
  version_added: 0.4.0
reconnect_attempts:
  description: Connections tried, the successful one included.
  returned: when O(reconnect_within) is set
  type: int
  sample: 1
  version_added: 0.4.0
reconnected_after_s:
  description: Seconds from the first try to the one that got through (controller clock); null when none did.
  returned: when O(reconnect_within) is set
  type: float
  sample: 0.8
  version_added: 0.4.0
late_confirm:
  description:
    - V(true) when this run's SSH connection reached the host before the rollback fired, but the module ran only
      after it (the host was reachable, too slow); V(false) when the connection arrived after the rollback.
  returned: when the change was rolled back
  type: bool
  version_added: 0.4.0
connected_after_effective_s:
  description: For a late confirm, when this run's connection reached the host, in seconds after the change took effect.
  returned: when RV(late_confirm) is true
  type: float
  version_added: 0.4.0
rollback_deadline:
  description:
    - Epoch time at which the rollback fires (or fired) unless confirmed, network_rollback_timeout seconds after the
      change took effect.
  returned: when the change exists
  type: float
  sample: 1735732860.25
rollback_pid:
  description: Process id of the rollback that was stopped; null when it had already ended.
  returned: when this run confirmed
  type: int
rollback:
  description: The rollback's record (the module then fails).
  returned: when the change was rolled back
  type: dict
  contains:
    trigger:
      description: V(timeout) (not confirmed in time) or V(apply-failed) (network_apply undid it at once).
      type: str
    seconds_after_arming:
      description: When the rollback ran, in seconds after the change was armed.
      type: float
    restored:
      description: Files written back with their old content and mode.
      type: list
      elements: str
    removed:
      description: Owned files the change had added, removed.
      type: list
      elements: str
    refreshed:
      description: Unchanged files written again so that networkd rebuilds them.
      type: list
      elements: str
    devices_deleted:
      description: Devices the change had created or redefined, deleted.
      type: list
      elements: str
    reconfigured:
      description:
        - Links given to C(networkctl reconfigure) after the reload, every link of the files either
          side touched (the host is cut off anyway, and the change may have left any of them
          failed, which a reload skips). Empty when systemd-networkd was restarted instead.
      type: list
      elements: str
    commands:
      description: Commands run, with argv, rc, stdout and stderr.
      type: list
      elements: dict
    errors:
      description: What went wrong during the restore, if anything.
      type: list
      elements: str
pruned:
  description: Ids of old change directories removed.
  returned: when this run confirmed
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.network_commit import (
    DEFAULT_STATE_DIR,
    CommitError,
    confirm_change,
    connection_started_at,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            change_id=dict(type='str', required=True),
            state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
            wait_rolled_back=dict(type='bool', default=False),
            # Handled by the action plugin, which never passes it on.
            reconnect_within=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = confirm_change(params['change_id'], state_dir=params['state_dir'],
                                check_mode=module.check_mode,
                                wait_rolled_back=params['wait_rolled_back'],
                                connected_at=connection_started_at())
    except CommitError as exc:
        exc.result.setdefault('change_id', params['change_id'])
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
