# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The work of the libvirt_domain module: plan a domain against the host, then apply it.

Everything up to the check-mode exit only reads the host; errors name the option and
the value. The module file holds the documentation and the argument spec.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time


from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_conn import (
    host_arch,
    host_can_kvm,
    lookup_domain,
    lookup_network,
    macs_of_other_domains,
)
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import (
    build_domain_xml,
    changed_keys,
    merge_files,
    parse_hostdev,
    project_domain,
    render,
    resolve_cpu_model,
    validate_domain_params,
)

try:
    import libvirt
except ImportError:
    libvirt = None  # connect() reports the missing library.

SYSFS_PCI = '/sys/bus/pci/devices'
SEED_TOOLS = ('cloud-localds', 'genisoimage', 'xorrisofs', 'mkisofs')
STATE_NAMES = {
    0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused',
    4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended',
}
UNDEFINE_FLAGS = 1 | 2  # VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


def devices_with_id(sysfs_pci, pci_id):
    """Addresses of the PCI devices whose vendor and device ids are ``pci_id`` (``10de:2684``)."""
    vendor, device = pci_id.split(':')
    found = []
    for address in sorted(os.listdir(sysfs_pci)) if os.path.isdir(sysfs_pci) else []:
        ids = []
        for name in ('vendor', 'device'):
            try:
                with open(os.path.join(sysfs_pci, address, name)) as handle:
                    ids.append(handle.read().strip().lower().replace('0x', ''))
            except (IOError, OSError):
                ids.append(None)
        if ids == [vendor, device]:
            found.append(address)
    return found


class DomainRunner(object):

    def __init__(self, module, conn):
        self.module = module
        self.conn = conn
        self.params = module.params
        self.name = module.params['name']
        self.uri = module.params['uri']
        self.created = []
        self.actions = []
        self.restored = False

    # -- helpers -------------------------------------------------------------

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    def state_of(self, dom):
        if dom is None:
            return 'absent'
        return STATE_NAMES.get(dom.state()[0], 'unknown')

    def summary(self, proj, state):
        if proj is None:
            return {}
        return {
            'name': proj['name'],
            'uuid': proj['uuid'],
            'state': state,
            'type': proj['type'],
            'macs': [iface['mac'] for iface in proj['interfaces']],
            'vcpus': proj['vcpus'],
            'memory_mib': proj['memory_mib'],
        }

    def check_owner(self, before):
        owner = self.params['owner']
        recorded = before['owner']
        if recorded is None or recorded['name'] != owner:
            found = "owner '%s'" % recorded['name'] if recorded else 'no owner metadata'
            self.fail("name: domain '%s' exists and was not created by %s (%s); remove it or choose "
                      "another name" % (self.name, owner, found))

    # -- host-dependent validation (no changes) -------------------------------

    def resolve_type(self, spec):
        requested = spec['type']
        can_kvm = host_can_kvm(self.conn)
        if requested == 'auto':
            spec['type'] = 'kvm' if can_kvm else 'qemu'
        elif requested == 'kvm' and not can_kvm:
            self.fail('domain_type: kvm is not usable on %s (libvirt offers no kvm for the host arch or '
                      'the CPU lacks the vmx/svm flag); use qemu or auto' % self.uri)
        spec['cpu_model'] = resolve_cpu_model(spec['type'], spec['cpu_model'])
        spec['arch'] = host_arch(self.conn)

    def check_paths(self, spec):
        for key in ('kernel', 'initrd'):
            if spec[key] and not os.path.isfile(spec[key]):
                self.fail('%s: %s does not exist' % (key, spec[key]))
        writable = [('serial_log', spec['serial_log'])]
        if self.params['state'] == 'saved':
            writable.append(('save_path', self.params['save_path']))
        for key, path in writable:
            if path and not os.path.isdir(os.path.dirname(path)):
                self.fail('%s: %s cannot be written, directory %s does not exist'
                          % (key, path, os.path.dirname(path)))

    def check_hostdevs(self, spec):
        """Every address exists; every vendor:device id is replaced by the devices that carry it."""
        resolved, seen = [], {}
        for index, entry in enumerate(spec['hostdevs']):
            kind, value = parse_hostdev(entry, 'hostdevs[%d]' % index)
            if kind == 'address':
                if not os.path.exists(os.path.join(SYSFS_PCI, value)):
                    self.fail('hostdevs[%d]: %s does not exist on this host (no %s)'
                              % (index, value, os.path.join(SYSFS_PCI, value)))
                found = [value]
            else:
                found = devices_with_id(SYSFS_PCI, value)
                if not found:
                    self.fail('hostdevs[%d]: no PCI device with vendor:device id %s on this host (%s)'
                              % (index, value, SYSFS_PCI))
            for address in found:
                if address in seen:
                    self.fail('hostdevs[%d]: %s (%s) is already listed as hostdevs[%d]'
                              % (index, entry, address, seen[address]))
                seen[address] = index
                resolved.append(address)
        spec['hostdevs'] = resolved

    def check_nics(self, spec, before, will_start):
        old_macs = [iface['mac'] for iface in before['interfaces']] if before else []
        explicit = {}
        for index, nic in enumerate(spec['nics']):
            net = lookup_network(self.conn, nic['network'])
            if net is None:
                self.fail("nics[%d].network: network '%s' is not defined on %s" % (index, nic['network'], self.uri))
            if will_start and not net.isActive():
                self.fail("nics[%d].network: network '%s' on %s is defined but not active; start it first "
                          "(aicluster.lab.libvirt_network does)" % (index, nic['network'], self.uri))
            if nic['mac']:
                explicit[nic['mac']] = index
        used = macs_of_other_domains(self.conn, before['uuid'] if before else None)
        for index, nic in enumerate(spec['nics']):
            if nic['mac'] is None and index < len(old_macs) and old_macs[index]:
                kept = old_macs[index]
                if kept in explicit:
                    self.fail('nics[%d].mac: the MAC %s it had is now given to nics[%d]; set nics[%d].mac '
                              'explicitly' % (index, kept, explicit[kept], index))
                nic['mac'] = kept
                continue
            if nic['mac'] and nic['mac'] in used:
                self.fail("nics[%d].mac: %s is already used by domain '%s'" % (index, nic['mac'], used[nic['mac']]))

    def qemu_img(self):
        path = self.module.get_bin_path('qemu-img')
        if not path:
            self.fail('disk.base_image: qemu-img is needed to create the overlay and was not found in PATH')
        return path

    def image_info(self, path):
        rc, out, err = self.module.run_command([self.qemu_img(), 'info', '--force-share', '--output=json', path])
        if rc != 0:
            self.fail('disk.base_image: qemu-img cannot read %s: %s' % (path, err.strip()))
        try:
            return json.loads(out)
        except ValueError:
            self.fail('disk.base_image: qemu-img info printed no JSON for %s' % path)

    def plan_disk(self, spec):
        """Return the overlay creation command, or None when the disk exists."""
        disk = spec['disk']
        if not disk:
            return None
        path = disk['path']
        if os.path.exists(path):
            return None
        if not disk['base_image']:
            self.fail('disk.path: %s does not exist; give disk.base_image to create it as an overlay' % path)
        if not os.path.isdir(os.path.dirname(path)):
            self.fail('disk.path: %s cannot be created, directory %s does not exist' % (path, os.path.dirname(path)))
        base = disk['base_image']
        if not os.path.isfile(base):
            self.fail('disk.base_image: %s does not exist' % base)
        info = self.image_info(base)
        base_format = info.get('format')
        if not base_format:
            self.fail('disk.base_image: qemu-img reports no format for %s' % base)
        cmd = [self.qemu_img(), 'create', '-q', '-f', 'qcow2', '-F', base_format, '-b', base, path]
        if disk['size_gib']:
            wanted = disk['size_gib'] * 1024 ** 3
            virtual = int(info.get('virtual-size') or 0)
            if wanted < virtual:
                self.fail('disk.size_gib: %d is smaller than the virtual size of disk.base_image %s (%.1f GiB)'
                          % (disk['size_gib'], base, virtual / 1024.0 ** 3))
            cmd.append('%dG' % disk['size_gib'])
        return cmd

    def plan_seed(self, spec, recorded):
        """Return (entry, files) for the seed ISO, or None when it is up to date or not wanted."""
        cloud_init = self.params.get('cloud_init')
        if not cloud_init:
            return None, None
        docs = {
            'user-data': cloud_init.get('user_data') or '#cloud-config\n{}\n',
            'network-config': cloud_init.get('network_config'),
        }
        digest = hashlib.sha256(json.dumps(docs, sort_keys=True).encode('utf-8')).hexdigest()
        meta = cloud_init.get('meta_data')
        if meta is None:
            # A content-derived instance-id makes cloud-init treat a changed seed as a new instance.
            meta = 'instance-id: %s-%s\nlocal-hostname: %s\n' % (self.name, digest[:12], self.name)
        docs['meta-data'] = meta
        digest = 'sha256:' + hashlib.sha256(json.dumps(docs, sort_keys=True).encode('utf-8')).hexdigest()
        path = spec['cdrom']
        entry = {'role': 'seed', 'path': path, 'digest': digest}
        old = [f for f in recorded if f['path'] == path]
        if os.path.exists(path):
            if not old:
                self.fail('cloud_init: %s exists and was not created by this module for %s; remove it'
                          % (path, self.name))
            if old[0].get('digest') == digest:
                return entry, None
        return entry, dict((k, v) for k, v in docs.items() if v is not None)

    def seed_tool(self):
        for tool in SEED_TOOLS:
            path = self.module.get_bin_path(tool)
            if path:
                return tool, path
        self.fail('cloud_init: building the NoCloud seed ISO needs one of %s and none is installed '
                  '(Debian: apt-get install genisoimage, or cloud-image-utils)' % ', '.join(SEED_TOOLS))

    # -- host changes ---------------------------------------------------------

    def create_overlay(self, cmd, path):
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail('disk.path: qemu-img could not create overlay %s: %s' % (path, (err or out).strip()))
        self.created.append(path)

    def build_seed(self, tool, path, docs):
        tool_name, tool_path = tool
        workdir = tempfile.mkdtemp(prefix='aicluster-seed-')
        try:
            names = []
            for doc in ('user-data', 'meta-data', 'network-config'):
                if doc in docs:
                    with open(os.path.join(workdir, doc), 'w') as handle:
                        handle.write(docs[doc])
                    names.append(os.path.join(workdir, doc))
            # Build beside the target and rename, so a failed build never leaves half an ISO in place.
            tmp = '%s.tmp-%d' % (path, os.getpid())
            if tool_name == 'cloud-localds':
                cmd = [tool_path]
                if 'network-config' in docs:
                    cmd += ['-N', os.path.join(workdir, 'network-config')]
                cmd += [tmp, os.path.join(workdir, 'user-data'), os.path.join(workdir, 'meta-data')]
            else:
                cmd = [tool_path, '-quiet', '-o', tmp, '-V', 'cidata', '-J', '-r'] + names
            rc, out, err = self.module.run_command(cmd)
            if rc != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                self.fail('cloud_init: %s failed to build %s: %s' % (tool_name, path, (err or out).strip()))
            existed = os.path.exists(path)
            os.rename(tmp, path)
            if not existed:
                self.created.append(path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def rollback(self):
        for path in self.created:
            try:
                os.unlink(path)
            except OSError:
                pass

    def define(self, xml_text):
        try:
            return self.conn.defineXML(xml_text)
        except libvirt.libvirtError as exc:
            self.rollback()
            self.fail('name: libvirt refused the definition of %s: %s' % (self.name, exc), xml=xml_text)

    def shutdown(self, dom, timeout):
        if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            # A paused or suspended guest cannot react to the ACPI button.
            was = self.state_of(dom)
            dom.destroy()
            return 'destroyed (it was %s, so ACPI could not reach it)' % was
        if timeout > 0:
            try:
                dom.shutdown()
            except libvirt.libvirtError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not dom.isActive():
                    return 'shut down by ACPI'
                time.sleep(0.5)
        if dom.isActive():
            dom.destroy()
            return 'destroyed after %ds without ACPI power-off' % timeout
        return 'shut down by ACPI'

    def remove_if_ours(self, path, recorded):
        if any(f['path'] == path and f['role'] == 'save' for f in recorded):
            try:
                os.unlink(path)
            except OSError:
                pass
            return True
        return False

    def start(self, dom, save_path, recorded):
        """Restore from save_path when possible, else boot. Returns a message."""
        if save_path and os.path.exists(save_path):
            problem = None
            try:
                image_uuid = project_domain(self.conn.saveImageGetXMLDesc(save_path, 0))['uuid']
                if image_uuid != dom.UUIDString():
                    problem = 'the image belongs to domain UUID %s, not %s' % (image_uuid, dom.UUIDString())
                else:
                    self.conn.restoreFlags(save_path, None, 0)
                    self.restored = True
            except libvirt.libvirtError as exc:
                problem = str(exc)
            if self.restored:
                if not self.remove_if_ours(save_path, recorded):
                    self.module.warn('restored %s from %s, which this module did not create; delete it, restoring '
                                     'it again would roll the guest back against a newer disk' % (self.name, save_path))
                return 'restored from %s' % save_path
            if not self.params['restore_fallback']:
                self.fail('save_path: restoring %s from %s failed: %s' % (self.name, save_path, problem))
            self.module.warn('restoring %s from %s failed (%s); booted it cold instead'
                             % (self.name, save_path, problem))
            dom.create()
            if not self.remove_if_ours(save_path, recorded):
                self.module.warn('%s is stale after the cold boot; delete it' % save_path)
            return 'restore from %s failed, booted cold' % save_path
        dom.create()
        return 'started'

    # -- states ---------------------------------------------------------------

    def run_absent(self, dom, before):
        result = {'changed': False, 'domain': {}, 'restart_required': False, 'restored': False,
                  'created_files': [], 'removed_files': [], 'changes': []}
        if dom is None:
            self.module.exit_json(msg='domain %s is absent' % self.name, **result)
        files = before['owner']['files'] if self.params['remove_storage'] else []
        doomed = [f['path'] for f in files if os.path.exists(f['path'])]
        result['changed'] = True
        result['changes'] = changed_keys(before, None)
        result['removed_files'] = doomed
        if self.module._diff:
            result['diff'] = {'before': render(dict(before, state=self.state_of(dom))), 'after': ''}
        if self.module.check_mode:
            self.module.exit_json(msg='domain %s would be removed' % self.name, **result)
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(UNDEFINE_FLAGS)
        for path in doomed:
            try:
                os.unlink(path)
            except OSError as exc:
                self.module.warn('could not delete %s: %s' % (path, exc))
        self.module.exit_json(msg='domain %s removed' % self.name, **result)

    def plan_definition(self, dom, before, current_state, active):
        """Validate the options against the host and build the desired definition.

        Only reads the host: nothing is created before the check-mode exit.
        """
        params = self.params
        state = params['state']
        save_path = params.get('save_path')
        spec = validate_domain_params(params)
        will_start = state == 'running' and not active
        self.resolve_type(spec)
        if spec['uuid'] and before and spec['uuid'] != before['uuid']:
            self.fail("uuid: %s differs from UUID %s of the existing domain '%s'; remove the domain to change it"
                      % (spec['uuid'], before['uuid'], self.name))
        if before and not spec['uuid']:
            spec['uuid'] = before['uuid']
        self.check_paths(spec)
        self.check_hostdevs(spec)
        self.check_nics(spec, before, will_start)
        overlay_cmd = self.plan_disk(spec)
        recorded = before['owner']['files'] if before else []
        seed_entry, seed_docs = self.plan_seed(spec, recorded)
        tool = self.seed_tool() if seed_docs else None

        new_entries = []
        planned_files = []
        if overlay_cmd:
            new_entries.append({'role': 'overlay', 'path': spec['disk']['path']})
            planned_files.append(spec['disk']['path'])
        if seed_entry:
            new_entries.append(seed_entry)
            if seed_docs and not os.path.exists(seed_entry['path']):
                planned_files.append(seed_entry['path'])
        if state == 'saved' and active:
            new_entries.append({'role': 'save', 'path': save_path})
        spec['files'] = merge_files(recorded, new_entries)
        desired_xml = build_domain_xml(spec)
        return (spec, desired_xml, project_domain(desired_xml), planned_files, recorded,
                overlay_cmd, seed_entry, seed_docs, tool)

    def run(self):
        params = self.params
        state = params['state']
        dom = lookup_domain(self.conn, self.name)
        before = project_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if dom else None
        if dom is not None:
            self.check_owner(before)
        if state == 'absent':
            self.run_absent(dom, before)

        current_state = self.state_of(dom)
        active = current_state in ('running', 'paused', 'blocked', 'pmsuspended')
        save_path = params.get('save_path')
        if state == 'saved' and not active and not os.path.exists(save_path):
            self.fail("save_path: domain '%s' is %s and %s does not exist; only a running domain can be saved"
                      % (self.name, current_state, save_path))
        if params['define']:
            spec, desired_xml, desired, planned_files, recorded, overlay_cmd, seed_entry, seed_docs, tool = \
                self.plan_definition(dom, before, current_state, active)
        else:
            # Power state only: the definition stays as libvirt has it.
            if dom is None:
                self.fail("name: domain '%s' does not exist on %s; define it first (define: true)" % (self.name, self.uri))
            desired_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            desired = before
            recorded = before['owner']['files']
            spec = {'files': recorded}
            planned_files, overlay_cmd, seed_entry, seed_docs, tool = [], None, None, None, None
        must_define = before is None or before != desired
        if must_define:
            self.actions.append('define' if before is None else 'redefine')
        if overlay_cmd:
            self.actions.append('create overlay')
        if seed_docs:
            self.actions.append('build seed ISO')

        target_state = current_state if dom else 'shutoff'
        if state == 'running' and current_state != 'running':
            if current_state == 'paused':
                self.actions.append('resume')
            elif save_path and os.path.exists(save_path):
                self.actions.append('restore from %s' % save_path)
            else:
                self.actions.append('start')
            target_state = 'running'
        elif state == 'shutdown' and active:
            self.actions.append('shutdown')
            target_state = 'shutoff'
        elif state == 'saved' and active:
            self.actions.append('save')
            target_state = 'shutoff'

        result = {
            'changed': bool(self.actions),
            'changes': changed_keys(before, desired),
            'restart_required': False,
            'restored': False,
            'created_files': planned_files,
        }
        if self.module._diff:
            result['diff'] = {
                'before': render(dict(before, state=current_state)) if before else '',
                'after': render(dict(desired, state=target_state)),
                'before_header': '%s (libvirt)' % self.name,
                'after_header': '%s (desired)' % self.name,
            }

        if self.module.check_mode:
            if active and target_state != 'shutoff':
                result['restart_required'] = self.live_differs(dom, desired)
            result['domain'] = self.summary(desired, target_state)
            result['xml'] = desired_xml
            msg = 'domain %s: %s' % (self.name, ', '.join(self.actions) if self.actions else 'no change')
            self.module.exit_json(msg=msg + (' (check mode)' if self.actions else ''), **result)

        # From here on the host changes.
        if overlay_cmd:
            self.create_overlay(overlay_cmd, spec['disk']['path'])
        if seed_docs:
            self.build_seed(tool, seed_entry['path'], seed_docs)
        if must_define:
            dom = self.define(desired_xml)

        notes = []
        if state == 'running':
            if current_state == 'paused':
                dom.resume()
                notes.append('resumed')
            elif not active:
                notes.append(self.start(dom, save_path, recorded))
                consumed = [f for f in spec['files'] if f['role'] == 'save' and not os.path.exists(f['path'])]
                if consumed:
                    # The save image is gone (restored or made stale); stop recording it.
                    spec['files'] = [f for f in spec['files'] if f not in consumed]
                    self.define(build_domain_xml(spec))
        elif state == 'shutdown' and active:
            notes.append(self.shutdown(dom, params['shutdown_timeout']))
        elif state == 'saved' and active:
            dom.save(save_path)
            notes.append('saved to %s' % save_path)

        dom = lookup_domain(self.conn, self.name)
        final_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        final = project_domain(final_xml)
        final_state = self.state_of(dom)
        if dom.isActive():
            result['restart_required'] = self.live_differs(dom, final)
        result['restored'] = self.restored
        result['created_files'] = list(self.created)
        result['domain'] = self.summary(final, final_state)
        result['xml'] = final_xml
        msg = 'domain %s: %s' % (self.name, ', '.join(self.actions) if self.actions else 'no change')
        if notes:
            msg += ' (%s)' % '; '.join(notes)
        if result['restart_required']:
            msg += '; the running domain differs from its definition, restart it to apply'
        self.module.exit_json(msg=msg, **result)

    def live_differs(self, dom, desired):
        live = project_domain(dom.XMLDesc(0))
        # The owner metadata has no effect on the guest, and the UUID cannot change while it runs.
        ignore = {'owner', 'uuid'}
        if desired['cpu_model'] == 'host-model':
            # libvirt expands host-model into a concrete custom model once the guest runs.
            ignore.add('cpu_model')
        live_cmp = dict((k, v) for k, v in live.items() if k not in ignore)
        want_cmp = dict((k, v) for k, v in desired.items() if k not in ignore)
        # In check mode a NIC that libvirt will give a MAC has none in the desired spec yet.
        if len(live_cmp['interfaces']) == len(want_cmp['interfaces']):
            want_cmp['interfaces'] = [dict(w, mac=w['mac'] or lv['mac'])
                                      for w, lv in zip(want_cmp['interfaces'], live_cmp['interfaces'])]
        return live_cmp != want_cmp
