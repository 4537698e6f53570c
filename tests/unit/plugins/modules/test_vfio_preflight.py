# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vfio_preflight run in-process on the captures of fixtures/vfio and fixtures/gpu."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import vfio
from ansible_collections.aicluster.lab.plugins.modules import vfio_preflight

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'module_utils'))
from gpu_sysfs import build_sysfs  # noqa: E402
from test_vfio import capture  # noqa: E402


@pytest.fixture
def host(tmp_path, monkeypatch):
    def _host(name):
        if name == 'cpu-only-ci':
            root, dev, cmdline, lists = build_sysfs(name, tmp_path / 'sys'), str(tmp_path / 'dev'), 'quiet', []
        else:
            root, dev, cmdline, lists = capture(name, tmp_path)
        (tmp_path / 'cmdline').write_text(cmdline + '\n')
        kernel = tmp_path / 'lib' / os.uname()[2]
        kernel.mkdir(parents=True)
        (kernel / 'modules.dep').write_text(''.join(lists))
        monkeypatch.setattr(vfio, 'SYSFS_ROOT', root)
        monkeypatch.setattr(vfio, 'DEV_ROOT', dev)
        monkeypatch.setattr(vfio, 'PROC_CMDLINE', str(tmp_path / 'cmdline'))
        monkeypatch.setattr(vfio, 'MODULES_ROOT', str(tmp_path / 'lib'))
    return _host


def test_ready_node_in_check_mode(run_module, host):
    host('q35-released')
    result = run_module(vfio_preflight, {'devices': ['0000:02:00.0', '1af4:1050']}, check_mode=True)
    assert (result.get('failed'), result['changed'], result['ready']) == (None, False, True)
    assert result['modules']['vfio_pci'] in ('loaded', 'available')


def test_problems_fail_the_module_before_any_change(run_module, host):
    host('cpu-only-ci')
    result = run_module(vfio_preflight, {'devices': ['0000:00:03.0', '0000:07:00.0']})
    assert result['failed'] is True
    assert result['msg'].startswith('PCI passthrough is not possible: IOMMU off: ')
    assert 'device unknown: 0000:07:00.0 is not a PCI device of this host' in result['msg']


def test_problems_returned_when_asked(run_module, host):
    host('cpu-only-ci')
    result = run_module(vfio_preflight, {'devices': ['0000:00:03.0'], 'fail_on_problems': False})
    assert result.get('failed') is None and result['ready'] is False and len(result['problems']) == 2


def test_bad_entry_is_named(run_module, host):
    host('cpu-only-ci')
    result = run_module(vfio_preflight, {'devices': ['gpu0']})
    assert result['msg'] == 'devices[0]: gpu0 is neither a PCI address like 0000:01:00.0 nor a vendor:device id like 10de:2684'
