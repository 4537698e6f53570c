# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection handling and the few libvirt look-ups both modules share."""

from __future__ import annotations

import re
import traceback
import xml.etree.ElementTree as ET

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import domain_macs

try:
    import libvirt
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None

CPUINFO = '/proc/cpuinfo'


def _quiet_error_handler(_ctx, _err):
    # libvirt prints every error to stderr by default; the modules report them
    # through fail_json instead, and stray stderr text confuses Ansible.
    pass


def connect(module, uri):
    """Open ``uri`` or fail the module with a message that names it."""
    if libvirt is None:
        module.fail_json(msg=missing_required_lib('libvirt-python'), exception=LIBVIRT_IMPORT_ERROR)
    libvirt.registerErrorHandler(_quiet_error_handler, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        module.fail_json(msg='uri: cannot connect to libvirt at %s: %s' % (uri, exc))
    if conn is None:
        module.fail_json(msg='uri: cannot connect to libvirt at %s' % uri)
    return conn


def error_code(exc):
    try:
        return exc.get_error_code()
    except Exception:
        return None


def lookup_domain(conn, name):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def lookup_network(conn, name):
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if error_code(exc) == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise


def network_config_xml(net):
    """Persistent network XML, falling back to the only one drivers without INACTIVE keep."""
    try:
        return net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        # The test driver rejects the flag with "unsupported flags".
        if error_code(exc) in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            return net.XMLDesc(0)
        raise


def _domain_xmls(dom):
    """Live and persistent XML: a running guest may have a pending config change."""
    xmls = [dom.XMLDesc(0)]
    if dom.isActive() and dom.isPersistent():
        xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return xmls


def macs_of_other_domains(conn, exclude_uuid=None):
    """Map every MAC used by a domain other than ``exclude_uuid`` to its owner's name."""
    used = {}
    for dom in conn.listAllDomains(0):
        if exclude_uuid and dom.UUIDString() == exclude_uuid:
            continue
        try:
            xmls = _domain_xmls(dom)
        except libvirt.libvirtError:
            # The domain vanished between listing and reading; it holds no MAC any more.
            continue
        for xml_text in xmls:
            for mac in domain_macs(xml_text):
                used.setdefault(mac, dom.name())
    return used


def running_domains_on_network(conn, network):
    names = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except libvirt.libvirtError:
            continue
        for src in root.findall("devices/interface[@type='network']/source"):
            if src.get('network') == network:
                names.append(dom.name())
                break
    return sorted(names)


def host_arch(conn):
    caps = ET.fromstring(conn.getCapabilities())
    return caps.findtext('host/cpu/arch') or 'x86_64'


def host_can_kvm(conn, cpuinfo=None):
    """True when libvirt offers kvm for the host arch and the CPU has VT-x/AMD-V.

    Capabilities alone are not enough: libvirt advertises kvm whenever
    /dev/kvm exists, even inside a VM without nested virtualisation.
    """
    caps = ET.fromstring(conn.getCapabilities())
    arch = caps.findtext('host/cpu/arch')
    offered = False
    for guest in caps.findall('guest'):
        arch_elem = guest.find('arch')
        if arch_elem is None or arch_elem.get('name') != arch:
            continue
        if any(d.get('type') == 'kvm' for d in arch_elem.findall('domain')):
            offered = True
    if not offered:
        return False
    try:
        with open(cpuinfo or CPUINFO) as handle:
            text = handle.read()
    except (IOError, OSError):
        return False
    return re.search(r'^flags\s*:.*\b(vmx|svm)\b', text, re.MULTILINE) is not None
