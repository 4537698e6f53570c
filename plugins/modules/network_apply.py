#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: network_apply
short_description: Apply network configuration files with a rollback armed first (commit-confirmed)
description:
  - Writes systemd-networkd (or netplan) files into O(directory) and reloads the network, like a
    commit-confirmed change on a router. Before anything changes, a detached rollback process is
    started on the host. Unless M(aicluster.lab.network_confirm) confirms the change within
    O(rollback_timeout) seconds, that process restores the previous files by itself, deletes the
    virtual devices the change created or redefined, reloads and reconfigures the affected links,
    and leaves a record. A change that cuts the host off from the controller so undoes itself.
  - Every file in O(directory) whose name starts with O(prefix) is owned by this module. Owned files
    missing from O(files) are removed; other files (and drop-in directories) are never touched.
  - Idempotent. When the owned files already have the wanted contents and mode, nothing is armed
    and nothing is reloaded.
  - The action looks first, in one plain-sh round trip (C(stat), C(sha256sum), the change directories'
    markers). When the owned files are exactly the wanted ones and no change is open, it reports no
    change without running the module, so a second run costs no Python on the host. Anything else (a
    difference, a symlink, a pending or stale change, an answer the look cannot read) runs the module.
  - Only one change may be pending per O(state_dir). While one is armed and neither confirmed nor
    rolled back, the module fails naming it and its rollback deadline, even when the files are
    as wanted (the pending rollback would undo them).
  - "Steps of a change: save the owned files and their modes under
    C(<state_dir>/<change_id>/before), arm the rollback, write the files atomically (temp file and
    rename), delete existing devices whose C(.netdev) changed or went away, run the O(reload)
    commands, then, only where systemd 252 needs it, C(networkctl reconfigure) for some links or a
    restart of systemd-networkd (see below). When any step fails, the module rolls back at once,
    disarms the timer and fails."
  - "What systemd 252 does, read in its source and checked against Debian's systemd-networkd 252
    in a network namespace: C(networkctl reload) compares every C(.network) file with the one
    loaded (inode, mtime, size) and reconfigures exactly the links whose matching file is new,
    changed or removed, keeping addresses that stay. So no C(networkctl reconfigure) follows for
    them: it would drop and re-add their configuration a second time. RV(reconfigured) lists these
    links; links of unchanged files are left alone."
  - "Exceptions the module handles: a link networkd has in the C(failed) state is skipped by the
    reload, so changed links in that state are reconfigured by name. A reload never changes an
    existing netdev, so devices whose C(.netdev) changed are deleted first; a bond or bridge is
    then recreated by the reload. Unchanged C(.network) files naming a recreated netdev
    (C(Bond=), C(Bridge=), C(VLAN=), ...) would keep networkd's pointer to the old netdev object
    (members not enslaved again, VLANs not created again), so they are written again with the
    same content, which makes the reload rebuild them; their links are also reconfigured by
    name, because deleting the device can leave them failed. A stacked netdev (VLAN, MACVLAN,
    tunnel) redefined under the same name keeps its old definition through any reload, so then
    systemd-networkd is restarted instead (RV(networkd_restarted)), which reconfigures every link.
    A VLAN whose id changes gets a new name from the network role, and needs no restart."
version_added: 0.2.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  files:
    description:
      - The owned files as they must be, file name to content. Every name must start with
        O(prefix) and be a plain file name.
      - An empty dict removes every owned file.
    type: dict
    required: true
  directory:
    description: Directory of the files, for example V(/etc/netplan) on netplan hosts.
    type: path
    default: /etc/systemd/network
  prefix:
    description:
      - File name prefix that marks the files this module owns in O(directory).
    type: str
    default: 10-aicluster-
  mode:
    description:
      - Permissions of the written files, an octal string. Netplan wants V('0600').
      - A file whose content is right but whose mode differs counts as changed.
    type: raw
    default: '0644'
  reload:
    description:
      - Commands that make the network read the files, run in order; each is a list of arguments,
        run without a shell.
      - On netplan hosts V([[netplan, generate], [networkctl, reload]]). Note that C(netplan generate)
        writes all of its networkd files anew, so networkd then reconfigures every link netplan
        manages, not only those of the changed files.
      - The rollback runs the same commands.
    type: list
    elements: list
    default: [[networkctl, reload]]
  rollback_timeout:
    description:
      - Seconds after arming at which the host restores the previous files unless the change was
        confirmed. 1 to 86400.
    type: int
    default: 60
  state_dir:
    description:
      - Directory for the saved files, the rollback script and the records of each change.
        The last five finished changes are kept.
    type: path
    default: /var/lib/aicluster-lab/network
notes:
  - Supports C(check_mode) (reports what would change, changes and arms nothing; a pending change
    still fails) and C(diff_mode) (before and after of each added, changed and removed file).
  - The rollback process runs in its own session with no inherited descriptors, so it survives the
    end of the SSH session. It stays in the login's cgroup, so with C(KillUserProcesses=yes) in
    logind.conf it would be killed at logout (Debian's default is V(no)). It does not survive a
    reboot; a change found unconfirmed with its process gone is reported as a warning and left as
    it is.
  - A stacked netdev removed in one change and defined again with different settings under the
    same name in a later one keeps its old settings until systemd-networkd restarts.
  - Changed C(.link) files are written, but C(networkctl reload) does not read them; the module
    warns that they take effect on the next udev event for the device.
  - Netplan files are parsed with PyYAML on the host to find their virtual devices; without it
    the module warns and such devices are not deleted when their definition changes.
  - The apply ignores SIGHUP while it writes and reloads, so a connection that drops mid-way does
    not stop it half-way.
seealso:
  - module: aicluster.lab.network_confirm
'''

EXAMPLES = r'''
- name: Apply the rendered networkd files, rollback after 60 s unless confirmed
  aicluster.lab.network_apply:
    files:
      10-aicluster-eth1.network: |
        [Match]
        Name=eth1

        [Network]
        Address=192.168.200.11/24
  register: applied

- name: Reconnect over a new connection, proving the host is still reachable
  ansible.builtin.meta: reset_connection

- name: Confirm, which disarms the rollback
  aicluster.lab.network_confirm:
    change_id: "{{ applied.change_id }}"
  when: applied is changed

- name: Netplan host
  aicluster.lab.network_apply:
    files: {60-aicluster-lab.yaml: "{{ netplan_yaml }}"}
    directory: /etc/netplan
    prefix: 60-aicluster-
    mode: '0600'
    reload: [[netplan, generate], [networkctl, reload]]
    rollback_timeout: 120
'''

RETURN = r'''
change_id:
  description: Id of the change, to pass to M(aicluster.lab.network_confirm). Null when nothing changed or in check mode.
  returned: always
  type: str
  sample: 20250101T120000.123Z-a1b2c3
change_dir:
  description: Directory of the change under O(state_dir).
  returned: when a change was applied
  type: str
  sample: /var/lib/aicluster-lab/network/20250101T120000.123Z-a1b2c3
armed:
  description: Whether a rollback is armed and waits for confirmation.
  returned: always
  type: bool
  sample: true
rollback_deadline:
  description: Epoch time at which the rollback fires unless confirmed. Null when nothing is armed.
  returned: always
  type: float
  sample: 1735732860.25
rollback_pid:
  description: Process id of the armed rollback.
  returned: when a change was applied
  type: int
  sample: 4242
files_added:
  description: Owned files the change creates.
  returned: always
  type: list
  elements: str
  sample: [10-aicluster-bond0.netdev]
files_changed:
  description: Owned files whose content or mode the change alters.
  returned: always
  type: list
  elements: str
  sample: [10-aicluster-eth1.network]
files_removed:
  description: Owned files the change removes.
  returned: always
  type: list
  elements: str
  sample: []
files_refreshed:
  description: Unchanged C(.network) files written again because they name a recreated netdev.
  returned: always
  type: list
  elements: str
  sample: [10-aicluster-eth2.network]
reconfigured:
  description:
    - Links the reload reconfigures (would reconfigure, in check mode) because of this change, from
      C([Match] Name=) of the added, changed, removed and rewritten C(.network) files (globs
      resolved against the host's links) and the interfaces of changed netplan files. Links of
      unchanged files are left alone.
  returned: always
  type: list
  elements: str
  sample: [bond0, eth1, eth2]
reconfigured_explicitly:
  description:
    - Links given to C(networkctl reconfigure) after the reload, because networkd had them failed
      or because they name a device that was deleted and recreated. Empty in most changes.
  returned: always
  type: list
  elements: str
  sample: [eth1, eth2]
networkd_restarted:
  description: Whether systemd-networkd was restarted, because a stacked netdev was redefined under the same name.
  returned: always
  type: bool
  sample: false
devices_deleted:
  description: Existing devices deleted before the reload because their C(.netdev) changed or went away.
  returned: always
  type: list
  elements: str
  sample: [bond0]
commands:
  description: Commands run (device deletions, reload commands, reconfigure or restart) with their results.
  returned: always
  type: list
  elements: dict
  contains:
    argv:
      description: The command.
      type: list
      elements: str
    rc:
      description: Exit status; null when it could not run.
      type: int
    stdout:
      description: Its output (the last 4000 characters).
      type: str
    stderr:
      description: Its error output (the last 4000 characters).
      type: str
rollback:
  description: The record of the in-process rollback, when applying failed (the module then fails).
  returned: on failure after arming
  type: dict
pending_change:
  description: Id of the pending change that made the module refuse.
  returned: when another change is pending
  type: str
pruned:
  description: Ids of old change directories removed (the last five finished ones are kept).
  returned: when a change was applied
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.network_commit import (
    DEFAULT_DIRECTORY,
    DEFAULT_PREFIX,
    DEFAULT_RELOAD,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT,
    CommitError,
    apply_change,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='dict', required=True),
            directory=dict(type='path', default=DEFAULT_DIRECTORY),
            prefix=dict(type='str', default=DEFAULT_PREFIX),
            mode=dict(type='raw', default='0644'),
            reload=dict(type='list', elements='list', default=DEFAULT_RELOAD),
            rollback_timeout=dict(type='int', default=DEFAULT_TIMEOUT),
            state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = apply_change(
            params['files'], directory=params['directory'], prefix=params['prefix'],
            reload=params['reload'], rollback_timeout=params['rollback_timeout'],
            state_dir=params['state_dir'], mode=params['mode'],
            check_mode=module.check_mode, diff=module._diff)
    except CommitError as exc:
        for warning in exc.result.pop('warnings', []):
            module.warn(warning)
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
