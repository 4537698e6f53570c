#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: file_set
short_description: Root-owned files and directories brought to their content and mode in one call
description:
  - Makes O(directories) (0755), writes O(files) with their content and mode, and removes O(absent), all owned by
    root, in one module call - where a copy or file task per file would start Python on the host once each (seconds
    per call on an emulated or busy host).
  - Only what differs changes - a file's content, mode or owner, a directory's mode or owner. A file is written to a
    temporary file in its directory (created 0600), given its mode and owner, flushed and renamed over the old one,
    so no reader sees it half written, nor a secret readable by others on the way. Missing parents are made 0755.
  - The action looks first, in one plain-sh round trip (C(stat), C(sha256sum)), at what the module would compare.
    When every entry is already as wanted, the module does not run and the task reports no change, so a second
    run of a role costs no Python on the host. Anything else (a difference, something in the way, an answer the
    look cannot read) runs the module, which decides and reports as it does alone.
  - Check mode says what would change and changes nothing; diff mode shows each file's old and new text (use
    C(no_log) for a secret - Ansible then shows neither).
  - Something other than a file (or directory) in the way, a relative path, or a mode that is not an octal string
    fails the task naming the path, before anything changes.
version_added: 0.5.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  files:
    description: The files, each with its whole content.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Octal mode, quoted - V('0600') (YAML reads an unquoted 0600 as the number 384).
        type: str
        default: '0644'
  directories:
    description: Directories to make (and their missing parents), mode 0755.
    type: list
    elements: str
    default: []
  absent:
    description: Files (or links) to remove; a directory is refused.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Says what would change, changes nothing.
    support: full
  diff_mode:
    description: Each file's old and new text.
    support: full
'''

EXAMPLES = r'''
- name: The k3s config and unit, only where they differ
  aicluster.lab.file_set:
    directories: [/etc/rancher/k3s]
    files:
      - {path: /etc/rancher/k3s/config.yaml, content: "{{ config_text }}", mode: "0600"}
      - {path: /etc/systemd/system/k3s.service, content: "{{ unit_text }}"}
    absent: [/etc/rancher/k3s/config.yaml.d/old.yaml]

- name: A secret
  aicluster.lab.file_set:
    files: [{path: /etc/rancher/k3s/cluster-token, content: "{{ token }}", mode: "0600"}]
  no_log: true
'''

RETURN = r'''
written:
  description: The files written or whose mode or owner was set, each with why (C(missing), C(content), C(mode 0644), C(owner 1000:1000)).
  returned: always
  type: list
  elements: dict
  sample: [{path: /etc/rancher/k3s/config.yaml, why: content}]
made:
  description: The directories made or whose mode or owner was set.
  returned: always
  type: list
  elements: str
  sample: [/etc/rancher/k3s]
removed:
  description: The files removed.
  returned: always
  type: list
  elements: str
  sample: [/etc/rancher/k3s/config.yaml.d/old.yaml]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.file_set import FileSetError, apply, plan


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='str', required=True),
                content=dict(type='str', required=True, no_log=False),
                mode=dict(type='str', default='0644'),
            )),
            directories=dict(type='list', elements='str', default=[]),
            absent=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        found = plan(module.params['files'], module.params['directories'], module.params['absent'])
        if not module.check_mode:
            apply(found)
    except (FileSetError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(
        changed=bool(found['files'] or found['directories'] or found['absent']),
        written=[dict(path=path, why=why) for path, _content, _mode, why, _before in found['files']],
        made=[path for path, _why in found['directories']],
        removed=list(found['absent']),
    )
    if module._diff:
        result['diff'] = [dict(before_header=path, after_header=path, before=before or '', after=content)
                          for path, content, _mode, why, before in found['files'] if 'content' in why or 'missing' in why]
    module.exit_json(**result)


if __name__ == '__main__':
    main()
