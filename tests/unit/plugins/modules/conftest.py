# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the module tests."""

import os

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import network_commit as nc


@pytest.fixture
def network_env(tmp_path, monkeypatch):
    """Temp directories for network_apply/network_confirm, with networkctl, ip and the
    networkd restart swapped for stand-ins that log their arguments to ``log``; any
    rollback still armed at the end of a test is stopped."""
    paths = {name: str(tmp_path / name) for name in ('network', 'state', 'sys')}
    for name in ('network', 'sys'):
        os.makedirs(paths[name])
    log = str(tmp_path / 'commands.log')
    open(log, 'w').close()
    monkeypatch.setattr(nc, 'NETWORKCTL', ['sh', '-c', 'echo "networkctl $*" >> %s' % log, 'networkctl'])
    monkeypatch.setattr(nc, 'IP', ['sh', '-c', 'echo "ip $*" >> %s' % log, 'ip'])
    monkeypatch.setattr(nc, 'RESTART', ['sh', '-c', 'echo restart-networkd >> %s' % log])
    monkeypatch.setattr(nc, 'SYS_CLASS_NET', paths['sys'])
    monkeypatch.setattr(nc, 'NETIF_LINKS', str(tmp_path / 'netif'))
    monkeypatch.setattr(nc, 'SETTLE_S', 0)
    paths['log'] = log
    paths['args'] = {'directory': paths['network'], 'state_dir': paths['state'],
                     'reload': [['sh', '-c', 'echo reloaded >> %s' % log]]}
    yield paths
    for name in nc._change_dirs(paths['state']):
        nc._kill_rollback(os.path.join(paths['state'], name))
