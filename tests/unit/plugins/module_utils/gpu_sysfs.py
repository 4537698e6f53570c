# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a sysfs dump (tests/unit/fixtures/gpu/sysfs/*.txt) into a sysfs tree under a directory,
and judge such a tree with gpu.gather().

The dumps are text because a tree cannot be kept in the collection as it is: PCI addresses hold
colons and the driver and iommu_group entries are links to directories, both of which
ansible-test sanity refuses. A dump line is ``<address>/<attribute>:<value>`` (what
``grep -H .`` prints) or ``<address>/<driver|iommu_group> -> <target>`` (what ``readlink``
prints); only the target's last part matters, as in sysfs.
"""

from __future__ import annotations

import os
import pathlib
import re

from ansible_collections.aicluster.lab.plugins.module_utils import gpu

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'gpu'

_LINK = re.compile(r'^(?P<device>[^/]+)/(?P<name>driver|iommu_group) -> (?P<target>.+)$')
_VALUE = re.compile(r'^(?P<device>[^/]+)/(?P<name>[a-z_]+):(?P<value>.*)$')


def build_sysfs(dump_name, root):
    """Write fixtures/gpu/sysfs/<dump_name>.txt as <root>/bus/pci/devices/... and return root."""
    return build_sysfs_lines((FIXTURES / 'sysfs' / ('%s.txt' % dump_name)).read_text().splitlines(), root)


def build_sysfs_lines(lines, root):
    """Write dump lines as <root>/bus/pci/devices/... and return root."""
    root = pathlib.Path(root)
    devices = root / 'bus' / 'pci' / 'devices'
    devices.mkdir(parents=True, exist_ok=True)
    for line in lines:
        if not line.strip() or line.startswith('#'):
            continue
        link = _LINK.match(line)
        if link:
            name = os.path.basename(link.group('target').rstrip('/'))
            if link.group('name') == 'driver':
                target = root / 'bus' / 'pci' / 'drivers' / name
            else:
                target = root / 'kernel' / 'iommu_groups' / name
            target.mkdir(parents=True, exist_ok=True)
            (devices / link.group('device')).mkdir(exist_ok=True)
            os.symlink(str(target), str(devices / link.group('device') / link.group('name')))
            continue
        value = _VALUE.match(line)
        assert value, 'not a sysfs dump line: %r' % line
        (devices / value.group('device')).mkdir(exist_ok=True)
        (devices / value.group('device') / value.group('name')).write_text(value.group('value') + '\n')
    return str(root)


def fixture_text(*parts):
    return (FIXTURES.joinpath(*parts)).read_text()


def ran(outputs):
    """Tool outputs {tool: stdout} as runs that exited 0, the way a read holds them."""
    return dict((tool, {'rc': 0, 'stdout': text, 'stderr': ''}) for tool, text in (outputs or {}).items())


def gather(sysfs_root, modules='', dev_root='/nonexistent', tools=None, os_release=''):
    """gpu.gather() of a tree: sysfs_root and dev_root read from disk, the text of /proc/modules,
    the tools' stdouts ({tool: text}) and the text of /etc/os-release given."""
    read = gpu.read_host(str(sysfs_root), str(dev_root), os.devnull, os.devnull, ran(tools))
    read.update(modules=modules, os_release=os_release)
    return gpu.gather(read)
