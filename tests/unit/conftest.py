# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the checkout importable as ansible_collections.aicluster.lab and run modules in-process."""

import json
import os
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collection_path():
    # ./lab setup links the checkout under .collections; a bare clone (CI) may not have run it.
    linked = os.path.join(ROOT, '.collections')
    if os.path.realpath(os.path.join(linked, 'ansible_collections', 'aicluster', 'lab')) == os.path.realpath(ROOT):
        return linked
    farm = tempfile.mkdtemp(prefix='aicluster-lab-collections-')
    os.makedirs(os.path.join(farm, 'ansible_collections', 'aicluster'))
    os.symlink(ROOT, os.path.join(farm, 'ansible_collections', 'aicluster', 'lab'))
    return farm


sys.path.insert(0, _collection_path())


@pytest.fixture
def run_module(monkeypatch, capsys):
    """Run ``module.main()`` with ``args``; return its result JSON (``failed`` set on fail_json).

    ``_stderr`` holds what the run printed there (where warnings go when controller code is loaded).
    """
    from ansible.module_utils import basic

    def _run(module, args, check_mode=False, diff=False):
        payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': payload}).encode())
        monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy')
        with pytest.raises(SystemExit):
            module.main()
        captured = capsys.readouterr()
        result = json.loads(captured.out)
        result['_stderr'] = captured.err
        return result

    return _run
