# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Commit-confirmed network changes: apply configuration files with a rollback armed first.

network_apply saves the owned files, starts a detached rollback process on the host, then
writes the new files and reloads. network_confirm, run from a new connection, disarms it.
Unconfirmed, the rollback restores the saved files by itself after the timeout, so a change
that cuts the host off from the controller undoes itself.

Layout of one change, ``<state_dir>/<change_id>/``:

  manifest.json   the owned files before the change (names, modes, owners, symlinks)
  before/<name>   their exact bytes
  plan.json       everything the rollback needs (directory, prefix, commands, deadline, ...)
  rollback.py     network_rollback.py's own source; its command line holds the change dir, which is
                  how confirm recognises the process behind ``pid`` before killing it
  pid             the sleeping rollback process
  rollback.log    its output
  lock            flock: a restore, a confirm and an abort never overlap
  confirmed | rolled_back | aborted | abandoned   how the change ended (JSON records)

systemd 252 semantics this relies on, read in src/network (networkd-manager.c
manager_reload, networkd-network.c network_reload, networkd-netdev.c netdev_load_one) and
checked against Debian's systemd-networkd 252.39 in a private network namespace (bridge
standing in for bond, macvlan for VLAN):
  * ``networkctl reload`` compares each .network file's inode/mtime/size with the loaded one,
    keeps the old object for unchanged files and reconfigures only the links whose matching
    object changed (new, modified or removed file), without a forced drop of their addresses.
    A ``networkctl reconfigure`` of those links afterwards would drop and re-add their
    configuration a second time, so it is not run for them.
  * Links in the ``failed`` state are skipped by the reload even when their file changed;
    only ``networkctl reconfigure`` revives them.
  * An existing netdev is never changed by a reload. Deleting an independent one (bond,
    bridge) makes networkd drop its object, and the reload creates it from the new file.
    A stacked one (VLAN, MACVLAN, tunnel) keeps its object after the device is deleted, so
    a changed definition only takes effect when networkd restarts.
  * A reused .network object keeps pointers to the netdev objects it named (Bond=, VLAN=,
    ...). After a netdev is recreated those are stale: members are not enslaved again and
    ``networkctl reconfigure`` does not help. Writing such .network files again with the same
    content (a new inode) makes the reload build new objects. Deleting a bridge also makes
    networkd re-apply the old configuration to its ports, which fails against the dying
    device and leaves them failed, hence an explicit reconfigure of those links.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.aicluster.lab.plugins.module_utils import network_rollback
from ansible_collections.aicluster.lab.plugins.module_utils.errors import ModuleFailure
from ansible_collections.aicluster.lab.plugins.module_utils.network_rollback import atomic_write, fsync_dir, read_owned
from ansible_collections.aicluster.lab.plugins.module_utils.network_units import entry_text, plan_change

DEFAULT_DIRECTORY = '/etc/systemd/network'
DEFAULT_PREFIX = '10-aicluster-'
DEFAULT_RELOAD = [['networkctl', 'reload']]
DEFAULT_STATE_DIR = '/var/lib/aicluster-lab/network'
DEFAULT_TIMEOUT = 60
DEFAULT_MODE = 0o644

# The commands and paths below are parameters of apply_change and confirm_change so that
# unit tests run the real logic without touching the host's links; modules use these.
NETWORKCTL = ['networkctl']
IP = ['ip']
RESTART = ['systemctl', 'restart', 'systemd-networkd']
SYS_CLASS_NET = '/sys/class/net'
NETIF_LINKS = '/run/systemd/netif/links'
# Pause between deleting devices and the reload, so networkd has processed the removal
# (RTM_DELLINK drops its netdev object) before it loads the new netdev files.
SETTLE_S = 1.0

KEEP_CHANGES = 5
# How long network_confirm(wait_rolled_back) waits past the deadline for the record:
# the restore runs the reload commands, each allowed up to COMMAND_TIMEOUT_S.
WAIT_MARGIN_S = 60
COMMAND_TIMEOUT_S = 120
ARM_TIMEOUT_S = 30
MAX_TIMEOUT_S = 86400

CHANGE_ID_RE = re.compile(r'^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{6}$')
MARKERS = ('confirmed', 'rolled_back', 'aborted', 'abandoned')
# Written by network_apply when the reload has returned: the change is in effect.
EFFECTIVE = 'effective'


class CommitError(ModuleFailure):
    """A refused or failed network change."""


# ---------------------------------------------------------------- validation

def _mode(value):
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.match(r'^0?[0-7]{3,4}$', value.strip()):
        mode = int(value.strip(), 8)
    else:
        raise CommitError("mode: %r is not an octal file mode such as '0644'" % (value,))
    if not 0 <= mode <= 0o7777:
        raise CommitError("mode: %r is not an octal file mode such as '0644'" % (value,))
    return mode


def validate(files, directory, prefix, reload, rollback_timeout, state_dir, mode):
    """Check the options; every error names the option and the offending value."""
    if not isinstance(prefix, str) or not prefix or '/' in prefix or prefix.startswith('.'):
        raise CommitError("prefix: %r must be a non-empty file name prefix without '/' "
                          "that does not start with '.'" % (prefix,))
    for option, path in (('directory', directory), ('state_dir', state_dir)):
        if not isinstance(path, str) or not os.path.isabs(path):
            raise CommitError('%s: %r is not an absolute path' % (option, path))
    if not isinstance(files, dict):
        raise CommitError('files: must be a dict of file name to content, got %r' % (files,))
    for name, content in files.items():
        if not isinstance(name, str) or '/' in name or name in ('.', '..') or '\0' in name:
            raise CommitError('files: %r is not a plain file name' % (name,))
        if not name.startswith(prefix):
            raise CommitError('files: %r does not start with the prefix %r; every file this module '
                              'writes must, so that it is known as owned' % (name, prefix))
        if not isinstance(content, str):
            raise CommitError('files.%s: the content must be a string, got %s'
                              % (name, type(content).__name__))
    if not isinstance(reload, list):
        raise CommitError('reload: %r must be a list of commands, each a list of arguments' % (reload,))
    for index, argv in enumerate(reload):
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, str) for a in argv) or not argv[0].strip()):
            raise CommitError('reload[%d]: %r must be a non-empty list of string arguments, '
                              'e.g. [networkctl, reload]' % (index, argv))
        if len(argv) == 1 and ' ' in argv[0].strip():
            raise CommitError('reload[%d]: %r names a program with a space in it; give the command '
                              'as a list of arguments, e.g. [networkctl, reload]' % (index, argv))
    if (isinstance(rollback_timeout, bool) or not isinstance(rollback_timeout, int)
            or not 1 <= rollback_timeout <= MAX_TIMEOUT_S):
        raise CommitError('rollback_timeout: %r must be a number of seconds from 1 to %d'
                          % (rollback_timeout, MAX_TIMEOUT_S))
    return _mode(mode)


# ---------------------------------------------------------------- files

def rollback_source():
    """The rollback program the host runs: network_rollback.py's own source, as bytes.

    Read through the module's loader: a file here, the module's zip inside AnsiballZ.
    """
    return network_rollback.__loader__.get_source(network_rollback.__name__).encode()


def _write_json(path, value):
    atomic_write(path, (json.dumps(value, indent=2, sort_keys=True) + '\n').encode(), 0o600)


def _read_json(path):
    with open(path) as handle:
        return json.load(handle)


def _diff_entries(directory, present, wanted, names):
    def show(entry):
        if entry is None:
            return ''
        if entry.get('symlink') is not None:
            return 'symlink -> %s\n' % entry['symlink']
        return entry_text(entry)

    def header(name, entry):
        path = os.path.join(directory, name)
        if entry is None:
            return '%s (absent)' % path
        if entry.get('symlink') is not None:
            return '%s (symlink)' % path
        return '%s (mode %04o)' % (path, entry['mode'])

    return [{'before_header': header(n, present.get(n)), 'after_header': header(n, wanted.get(n)),
             'before': show(present.get(n)), 'after': show(wanted.get(n))} for n in names]


def failed_links(names, sys_class_net, netif_links):
    """Links networkd has in the failed state (ADMIN_STATE in its per-ifindex state file)."""
    failed = []
    for name in names:
        try:
            with open(os.path.join(sys_class_net, name, 'ifindex')) as handle:
                ifindex = handle.read().strip()
            with open(os.path.join(netif_links, ifindex)) as handle:
                state = handle.read()
        except OSError:
            continue
        if re.search(r'^ADMIN_STATE=failed$', state, re.M):
            failed.append(name)
    return failed


def _existing_links(sys_class_net):
    try:
        return sorted(os.listdir(sys_class_net))
    except OSError:
        return []


# ---------------------------------------------------------------- change directories

def new_change_id(now=None):
    """UTC time to the millisecond, then random: ids sort in the order changes were made."""
    now = time.time() if now is None else now
    return '%s.%03dZ-%s' % (time.strftime('%Y%m%dT%H%M%S', time.gmtime(now)), int(now * 1000) % 1000,
                            secrets.token_hex(3))


def _proc_alive(pid, change_dir):
    """True when pid runs and is this change's rollback (its command line names the change dir).

    A pid alone could by now belong to an unrelated process; a zombie has finished.
    """
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            argv = handle.read().split(b'\0')
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            state = handle.read().rsplit(b')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in (b'Z', b'X'):
        return False
    target = os.fsencode(os.path.abspath(change_dir))
    return any(arg == target or arg.startswith(target + b'/') for arg in argv)


def _read_pid(change_dir):
    try:
        with open(os.path.join(change_dir, 'pid')) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def change_status(change_dir):
    """confirmed, rolled_back, aborted, abandoned, pending (rollback armed) or stale.

    stale: never confirmed and its rollback process is gone without having restored
    anything (the host rebooted, or someone killed it); its files stayed in place.
    """
    for marker in MARKERS:
        if os.path.exists(os.path.join(change_dir, marker)):
            return marker
    pid = _read_pid(change_dir)
    if pid is not None and _proc_alive(pid, change_dir):
        return 'pending'
    return 'stale'


def _change_dirs(state_dir):
    try:
        names = os.listdir(state_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if CHANGE_ID_RE.match(n)
                  and os.path.isfile(os.path.join(state_dir, n, 'plan.json')))


def prune(state_dir, keep=KEEP_CHANGES):
    """Remove finished change dirs beyond the newest ``keep``; pending ones always stay."""
    finished = [n for n in _change_dirs(state_dir) if change_status(os.path.join(state_dir, n)) != 'pending']
    pruned = finished[:-keep] if keep else finished
    for name in pruned:
        shutil.rmtree(os.path.join(state_dir, name), ignore_errors=True)
    return pruned


class _Lock:
    """flock on a file; blocks until the other holder (restore, confirm, apply) is done."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, 'a')
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _kill_rollback(change_dir, wait_s=5.0):
    """Stop the change's sleeping rollback; returns the pid it killed, or None."""
    pid = _read_pid(change_dir)
    if pid is None or not _proc_alive(pid, change_dir):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    end = time.monotonic() + wait_s
    while _proc_alive(pid, change_dir) and time.monotonic() < end:
        time.sleep(0.05)
    if _proc_alive(pid, change_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pid


# ---------------------------------------------------------------- apply

def _pending_changes(state_dir, check_mode, warnings):
    pending = []
    for name in _change_dirs(state_dir):
        change_dir = os.path.join(state_dir, name)
        status = change_status(change_dir)
        if status == 'pending':
            pending.append((name, _read_json(os.path.join(change_dir, 'plan.json'))))
        elif status == 'stale':
            warnings.append('change %s was never confirmed and its rollback process is gone (the host '
                            'rebooted?): its files stayed in place and are the state this run starts from'
                            % name)
            if not check_mode:
                _write_json(os.path.join(change_dir, 'abandoned'),
                            {'time': time.time(), 'reason': 'rollback process gone, not confirmed'})
    return pending


def _run(argv):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {'argv': list(argv), 'rc': None, 'stdout': '', 'stderr': str(exc)}
    return {'argv': list(argv), 'rc': proc.returncode,
            'stdout': proc.stdout.decode('utf-8', 'replace')[-4000:],
            'stderr': proc.stderr.decode('utf-8', 'replace')[-4000:]}


def _arm(change_dir, python):
    """Start rollback.py detached: its own session, no inherited descriptors, output to a log.

    The script forks and its parent exits at once (the pid it writes is the child's), so
    the sleeper is nobody's child here and outlives this process and its SSH session.
    """
    script = os.path.join(change_dir, 'rollback.py')
    with open(os.path.join(change_dir, 'rollback.log'), 'ab') as log:
        launcher = subprocess.Popen([python, script, change_dir, 'arm'], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, close_fds=True,
                                    start_new_session=True, cwd='/')
    try:
        rc = launcher.wait(timeout=ARM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
        rc = None
    pid = _read_pid(change_dir)
    if rc != 0 or pid is None or not _proc_alive(pid, change_dir):
        with open(os.path.join(change_dir, 'rollback.log'), 'rb') as log:
            tail = log.read()[-2000:].decode('utf-8', 'replace')
        raise CommitError('could not start the rollback process (rc %s): %s' % (rc, tail.strip()))
    return pid


def _rollback_now(change_dir, python, reason):
    """Undo a change that failed half-way: stop the timer, restore now, return the record."""
    with _Lock(os.path.join(change_dir, 'lock')):
        # Holding the lock, the sleeper is not in the middle of a restore of its own.
        _kill_rollback(change_dir)
    result = _run([python, os.path.join(change_dir, 'rollback.py'), change_dir, 'now', reason])
    try:
        return _read_json(os.path.join(change_dir, 'rolled_back')), result
    except (OSError, ValueError):
        return None, result


def apply_change(files, directory=DEFAULT_DIRECTORY, prefix=DEFAULT_PREFIX, reload=None,
                 rollback_timeout=DEFAULT_TIMEOUT, state_dir=DEFAULT_STATE_DIR, mode=DEFAULT_MODE,
                 check_mode=False, diff=False, networkctl=None, ip=None, restart=None,
                 sys_class_net=None, netif_links=None, settle=None, python=None):
    """Apply ``files`` commit-confirmed; return the module result or raise CommitError.

    networkctl, ip, restart (networkd), sys_class_net, netif_links, settle and python
    default to the module-level values; tests pass harmless stand-ins.
    """
    reload = [list(a) for a in DEFAULT_RELOAD] if reload is None else reload
    networkctl = list(NETWORKCTL if networkctl is None else networkctl)
    ip = list(IP if ip is None else ip)
    tools = {'networkctl': networkctl, 'ip': ip, 'restart': list(RESTART if restart is None else restart),
             'sys_class_net': SYS_CLASS_NET if sys_class_net is None else sys_class_net,
             'netif_links': NETIF_LINKS if netif_links is None else netif_links}
    sys_class_net = tools['sys_class_net']
    settle = SETTLE_S if settle is None else settle
    python = python or sys.executable
    mode = validate(files, directory, prefix, reload, rollback_timeout, state_dir, mode)
    directory, state_dir = os.path.normpath(directory), os.path.normpath(state_dir)

    present = read_owned(directory, prefix)
    wanted = {name: {'symlink': None, 'data': content.encode('utf-8'), 'mode': mode}
              for name, content in files.items()}
    links = _existing_links(sys_class_net)
    plan = plan_change(present, wanted, links)
    differing = plan['added'] + plan['changed'] + plan['removed']
    result = {'changed': bool(differing), 'change_id': None, 'rollback_deadline': None,
              'armed': False, 'files_added': plan['added'], 'files_changed': plan['changed'],
              'files_removed': plan['removed'], 'reconfigured': plan['reconfigured'],
              'reconfigured_explicitly': [], 'networkd_restarted': False,
              'devices_deleted': [], 'files_refreshed': [], 'commands': [], 'warnings': []}
    if diff:
        result['diff'] = _diff_entries(directory, present, wanted, sorted(differing))
    if plan['netplan_unparsed'] and differing:
        result['warnings'].append('PyYAML is missing on the host: virtual devices defined in the netplan '
                                  'files are not deleted when their definition changes')
    if plan['links_changed']:
        result['warnings'].append('.link files changed (%s): networkctl reload does not read them; they '
                                  'apply when udev next adds the device (reboot or udevadm trigger)'
                                  % ', '.join(plan['links_changed']))

    # One apply at a time per state_dir; a run that changes nothing creates nothing.
    state_lock = None
    if not check_mode and differing:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    if not check_mode and os.path.isdir(state_dir):
        state_lock = _Lock(os.path.join(state_dir, 'lock')).__enter__()
    try:
        pending = _pending_changes(state_dir, check_mode, result['warnings'])
        if pending:
            change_id, pending_plan = pending[-1]
            left = pending_plan['deadline'] - time.time()
            raise CommitError(
                'change %s in %s is still pending: it is neither confirmed nor rolled back, and its '
                'rollback fires at %s (%s). Confirm it with aicluster.lab.network_confirm change_id=%s, '
                'or wait for the rollback, before applying another change'
                % (change_id, state_dir, time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(pending_plan['deadline'])),
                   'in %d s' % left if left > 0 else 'now', change_id),
                pending_change=change_id, rollback_deadline=pending_plan['deadline'])

        if not differing:
            result['msg'] = 'no change: the %d owned files in %s are as wanted' % (len(present), directory)
            return result
        if check_mode:
            result['msg'] = 'would apply: %s (check mode)' % _summary(plan)
            return result
        return _apply(result, plan, present, wanted, directory, prefix, reload, rollback_timeout,
                      state_dir, tools, settle, python, links)
    finally:
        if state_lock is not None:
            state_lock.__exit__(None, None, None)


def look_script(directory=DEFAULT_DIRECTORY, prefix=DEFAULT_PREFIX, state_dir=DEFAULT_STATE_DIR):
    """One line of plain sh for the controller's quick look (plugins/action/network_apply.py).

    Two programs in all (every exec costs on an emulated guest): stat prints 'type|mode|name'
    per entry with the prefix, then '==', sha256sum each one's digest; then 'P <dir>' per
    change directory with no marker (pending, or stale: the module decides what it is).
    """
    return '; '.join([
        'export LC_ALL=C',
        'd=%s; p=%s; s=%s' % (shlex.quote(directory), shlex.quote(prefix), shlex.quote(state_dir)),
        'if cd "$d" 2>/dev/null; then set -- "$p"*; stat -c \'%F|%a|%n\' -- "$@" 2>/dev/null; echo ==; '
        'sha256sum -- "$@" 2>/dev/null; else echo ==; fi',
        'if [ -d "$s" ]; then for c in "$s"/*/; do [ -f "${c}plan.json" ] || continue; o=1; '
        'for m in %s; do if [ -e "$c$m" ]; then o=0; fi; done; if [ $o = 1 ]; then echo "P $c"; fi; done; fi'
        % ' '.join(MARKERS),
        'true',
    ])


def look_unchanged(output, files, mode=DEFAULT_MODE):
    """True only when look_script's output shows exactly ``files`` owned, with their content and
    mode, and no change left open: what apply_change would call no change."""
    if any('\\' in name or '\n' in name for name in files):
        return False  # sha256sum escapes such names: the module decides
    modes, digests, seen_marker = {}, {}, False
    for line in output.splitlines():
        line = line.rstrip('\r')
        if not line:
            continue
        if line == '==':
            seen_marker = True
        elif line.startswith('P '):
            return False
        elif not seen_marker:
            kind, _sep, rest = line.partition('|')
            mode_text, _sep, name = rest.partition('|')
            if kind == 'directory':
                continue  # drop-in directories are never owned
            if kind not in ('regular file', 'regular empty file'):
                return False  # a symlink (or anything else) is the module's to judge
            try:
                modes[name] = int(mode_text, 8)
            except ValueError:
                return False
        else:
            digest, sep, name = line.partition('  ')
            if sep and len(digest) == 64:
                digests[name] = digest
    wanted = {name: hashlib.sha256(content.encode('utf-8')).hexdigest() for name, content in files.items()}
    return (seen_marker and set(modes) == set(wanted) and all(value == mode for value in modes.values())
            and all(digests.get(name) == digest for name, digest in wanted.items()))


def _summary(plan):
    parts = []
    for key in ('added', 'changed', 'removed'):
        if plan[key]:
            parts.append('%s %s' % (key, ', '.join(plan[key])))
    return '; '.join(parts)


def _apply(result, plan, present, wanted, directory, prefix, reload, rollback_timeout, state_dir,
           tools, settle, python, links):
    sys_class_net = tools['sys_class_net']
    change_id = new_change_id()
    change_dir = os.path.join(state_dir, change_id)
    os.makedirs(os.path.join(change_dir, 'before'), mode=0o700)

    # (a) the owned files as they are, byte for byte, with modes and owners.
    manifest = {'directory': directory, 'prefix': prefix, 'files': {}}
    for name, entry in present.items():
        meta = {'mode': entry['mode'], 'symlink': entry['symlink'], 'uid': entry['uid'], 'gid': entry['gid']}
        if entry['symlink'] is None:
            atomic_write(os.path.join(change_dir, 'before', name), entry['data'], 0o600)
            meta['sha256'] = hashlib.sha256(entry['data']).hexdigest()
        manifest['files'][name] = meta
    _write_json(os.path.join(change_dir, 'manifest.json'), manifest)

    # What the rollback must do, planned now from both sets of files: it runs on a host
    # that may have no connection and must not need to think.
    back = plan_change(wanted, present, sorted(set(links) | set(plan['created'])))
    # Devices the change creates or redefines go, so that the reload makes the old
    # definitions again; a device that existed and that this change kept stays.
    kept = set(links) - set(plan['delete'])
    rollback_delete = sorted(set(plan['redefined']) - kept)
    armed_at = time.time()
    deadline = armed_at + rollback_timeout
    rollback_plan = {
        'change_id': change_id, 'directory': directory, 'prefix': prefix,
        'armed_at': armed_at, 'deadline': deadline, 'timeout': rollback_timeout,
        'reload': reload, 'networkctl': tools['networkctl'], 'ip': tools['ip'],
        'restart_networkd': tools['restart'], 'sys_class_net': sys_class_net,
        'settle': settle, 'command_timeout': COMMAND_TIMEOUT_S,
        'files_added': plan['added'], 'files_changed': plan['changed'], 'files_removed': plan['removed'],
        # The rollback reconfigures every link either side touches, not only those at risk:
        # the host is cut off already, and the bad change may have left any of them failed.
        'rollback': {'delete': rollback_delete, 'refresh': back['refresh'],
                     'restart': bool(back['restart']),
                     'reconfigure': sorted(set(back['reconfigured']) | set(plan['reconfigured']))},
    }
    _write_json(os.path.join(change_dir, 'plan.json'), rollback_plan)
    atomic_write(os.path.join(change_dir, 'rollback.py'), rollback_source(), 0o700)

    # (b) arm before touching anything.
    try:
        pid = _arm(change_dir, python)
    except CommitError as exc:
        _kill_rollback(change_dir)  # in case it started after all: nothing is left armed
        _write_json(os.path.join(change_dir, 'aborted'), {'time': time.time(), 'reason': exc.msg})
        raise CommitError('network change %s not applied, nothing was changed: %s' % (change_id, exc.msg),
                          change_id=change_id)
    result.update(change_id=change_id, change_dir=change_dir, rollback_deadline=round(deadline, 3),
                  rollback_pid=pid, armed=True)

    # The connection may die while the reload runs; a SIGHUP from the SSH session's end must
    # not stop this half-way (the rollback would repair it, but only after the timeout).
    try:
        old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:
        old_hup = None
    step = 'writing the files'
    # Held until the change is in effect (or undone): a rollback whose first deadline
    # passes during a slow apply waits for it, then counts its window from the effect.
    change_lock = _Lock(os.path.join(change_dir, 'lock'))
    change_lock.__enter__()
    locked = True
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        # (c) new files, owned files no longer wanted, and unchanged ones networkd must reread.
        for name in plan['added'] + plan['changed']:
            step = 'writing %s' % os.path.join(directory, name)
            atomic_write(os.path.join(directory, name), wanted[name]['data'], wanted[name]['mode'])
        for name in plan['removed']:
            step = 'removing %s' % os.path.join(directory, name)
            os.unlink(os.path.join(directory, name))
        for name in plan['refresh']:
            step = 'rewriting %s' % os.path.join(directory, name)
            atomic_write(os.path.join(directory, name), wanted[name]['data'], wanted[name]['mode'])
            result['files_refreshed'].append(name)
        fsync_dir(directory)
        # (d) networkd never changes an existing netdev: delete it so the reload recreates it.
        for dev in plan['delete']:
            if not os.path.lexists(os.path.join(sys_class_net, dev)):
                continue
            step = 'deleting device %s' % dev
            run = _run(tools['ip'] + ['link', 'delete', dev])
            result['commands'].append(run)
            if run['rc'] != 0:
                raise CommitError('rc %s: %s' % (run['rc'], run['stderr'].strip()))
            result['devices_deleted'].append(dev)
        if result['devices_deleted'] and settle:
            time.sleep(settle)
        # (e) reload: on systemd 252 it reconfigures the links of new, changed and rewritten
        # .network files by itself, except failed ones (see the module doc at the top).
        existing = set(_existing_links(sys_class_net))
        revive = set(failed_links(plan['reconfigured'], sys_class_net, tools['netif_links']))
        if result['devices_deleted']:
            revive |= set(plan['at_risk']) & existing
        commands = [list(argv) for argv in reload]
        if plan['restart']:
            # A stacked netdev keeps its old definition through any reload.
            commands.append(tools['restart'])
            result['networkd_restarted'] = True
        elif revive:
            commands.append(tools['networkctl'] + ['reconfigure'] + sorted(revive))
            result['reconfigured_explicitly'] = sorted(revive)
        for argv in commands:
            step = 'running %s' % ' '.join(argv)
            run = _run(argv)
            result['commands'].append(run)
            if run['rc'] != 0:
                output = (run['stderr'] or run['stdout']).strip()
                raise CommitError('rc %s: %s' % (run['rc'], output))
        # The confirm window proves that the controller reaches the host over the network
        # as it is now, so it starts when the change has taken effect: a slow apply on a
        # busy host must not eat it. The rollback process reads this file and moves its
        # deadline to EFFECTIVE + timeout.
        step = 'marking the change effective'
        _write_json(os.path.join(change_dir, EFFECTIVE), {'at': time.time()})
        deadline = effective_deadline(change_dir, rollback_plan)
        result['rollback_deadline'] = round(deadline, 3)
    except (CommitError, OSError) as exc:
        reason = exc.msg if isinstance(exc, CommitError) else '%s: %s' % (step, exc)
        change_lock.__exit__()
        locked = False
        record, run = _rollback_now(change_dir, python, 'applying failed: %s' % reason)
        if record is None:
            how = 'the in-process rollback did not finish (rc %s: %s); the previous files are in %s' % (
                run['rc'], (run['stderr'] or run['stdout']).strip(), os.path.join(change_dir, 'before'))
        elif record.get('errors'):
            how = 'the previous files were restored with errors: %s' % '; '.join(record['errors'])
        else:
            how = 'the previous files were restored and reloaded'
        result.update(armed=False, rollback=record)
        raise CommitError('network change %s failed while %s: %s; %s, and no rollback timer is left '
                          'armed' % (change_id, step, reason, how), **result)
    finally:
        if locked:
            change_lock.__exit__()
        if old_hup is not None:
            signal.signal(signal.SIGHUP, old_hup)

    result['pruned'] = prune(state_dir)
    result['msg'] = ('applied change %s (%s); it rolls back by itself at %s unless confirmed with '
                     'aicluster.lab.network_confirm' % (change_id, _summary(plan),
                                                        time.strftime('%H:%M:%S UTC', time.gmtime(deadline))))
    return result


def effective_deadline(change_dir, plan):
    """When the rollback fires unless confirmed: timeout s after the change took effect.

    Before the change is marked effective (the apply is still running), the deadline
    counts from the moment the rollback was armed.
    """
    try:
        effective = _read_json(os.path.join(change_dir, EFFECTIVE))
    except (OSError, ValueError):
        return plan['deadline']
    return max(plan['deadline'], float(effective.get('at', 0)) + plan['timeout'])


# ---------------------------------------------------------------- confirm

def _rolled_back_msg(change_id, record):
    if record.get('trigger') == 'timeout':
        after = record.get('seconds_after_effective')
        return ('change %s was rolled back by the host %d s after it was applied%s: no new connection from the '
                'controller confirmed it within %s s of the change taking effect'
                % (change_id, round(record.get('seconds_after_arming', 0)),
                   ' (%d s after it took effect)' % round(after) if after is not None else '',
                   record.get('timeout', '?')))
    return 'change %s was rolled back by network_apply itself: %s' % (change_id, record.get('reason'))


def _proc_stat(pid, proc):
    """(comm, ppid, starttime in clock ticks after boot) of a process, from /proc/<pid>/stat."""
    with open(os.path.join(proc, str(pid), 'stat')) as handle:
        text = handle.read()
    # comm is in parentheses and may itself hold spaces or parentheses: split at the last ')'.
    comm = text[text.index('(') + 1:text.rindex(')')]
    fields = text[text.rindex(')') + 2:].split()
    return comm, int(fields[1]), int(fields[19])


def connection_started_at(pid=None, proc='/proc'):
    """When the SSH connection this process runs under was accepted, by this host's clock.

    sshd forks a process per connection (named sshd, or sshd-session since OpenSSH 9.8)
    under its listener; its start time is when the connection arrived, however long the
    host then took to start the module. None when the process does not run under sshd.
    """
    pid = os.getpid() if pid is None else pid
    chain = []
    try:
        while pid > 1 and len(chain) < 64:
            comm, ppid, start = _proc_stat(pid, proc)
            chain.append((comm, start))
            pid = ppid
        with open(os.path.join(proc, 'stat')) as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith('btime '))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    sshd = [index for index, (comm, _start) in enumerate(chain) if comm.startswith('sshd')]
    # The topmost sshd is the listener; the one just below it forked for this connection.
    if len(sshd) < 2:
        return None
    return btime + chain[sshd[-2]][1] / float(os.sysconf('SC_CLK_TCK'))


def _late_confirm(change_dir, record, connected_at):
    """Seconds after the change took effect at which this connection arrived, when that was
    before the rollback fired (the host was reachable; it ran the confirm too late)."""
    if connected_at is None or connected_at >= record.get('rolled_back_at', 0):
        return None
    try:
        effective = float(_read_json(os.path.join(change_dir, EFFECTIVE))['at'])
    except (OSError, ValueError, KeyError):
        return None
    return round(connected_at - effective, 3)


def confirm_change(change_id, state_dir=DEFAULT_STATE_DIR, check_mode=False, wait_rolled_back=False,
                   wait_margin=WAIT_MARGIN_S, poll=1.0, connected_at=None):
    """Confirm (disarm) a change, or with wait_rolled_back wait for its rollback's record.

    Returns the module result; raises CommitError when the change was rolled back, is
    unknown, or (waiting) is still pending after its deadline + wait_margin. connected_at
    (see connection_started_at) tells a confirm that reached the host in time but ran after
    the rollback (late) from one that reached it only afterwards (cut off).
    """
    if not isinstance(change_id, str) or not CHANGE_ID_RE.match(change_id):
        raise CommitError('change_id: %r is not a change id as network_apply returns it '
                          '(like 20250101T120000.123Z-a1b2c3)' % (change_id,))
    if not isinstance(state_dir, str) or not os.path.isabs(state_dir):
        raise CommitError('state_dir: %r is not an absolute path' % (state_dir,))
    state_dir = os.path.normpath(state_dir)
    change_dir = os.path.join(state_dir, change_id)
    if not os.path.isfile(os.path.join(change_dir, 'plan.json')):
        raise CommitError('change_id: no change %s in %s' % (change_id, state_dir), status='unknown')
    plan = _read_json(os.path.join(change_dir, 'plan.json'))
    deadline = effective_deadline(change_dir, plan)
    result = {'changed': False, 'change_id': change_id, 'rollback_deadline': round(deadline, 3)}

    if wait_rolled_back:
        if not check_mode:
            end = deadline + wait_margin
            while change_status(change_dir) == 'pending' and time.time() < end:
                time.sleep(poll)
        return _report(change_dir, change_id, plan, result, waited=not check_mode)

    if check_mode:
        status = change_status(change_dir)
        if status not in ('pending', 'stale'):
            return _report(change_dir, change_id, plan, result, waited=False)
        result.update(changed=True, status='confirmed',
                      confirmed_after_s=round(time.time() - plan['armed_at'], 3),
                      msg='would confirm change %s (check mode)' % change_id)
        return result

    with _Lock(os.path.join(change_dir, 'lock')):
        # Holding the lock, the rollback is either sleeping or done: never half-way.
        status = change_status(change_dir)
        if status not in ('pending', 'stale'):
            return _report(change_dir, change_id, plan, result, waited=False, connected_at=connected_at)
        result['changed'] = True
        result['status'] = 'confirmed'
        result['confirmed_after_s'] = round(time.time() - plan['armed_at'], 3)
        try:
            # The confirm latency that matters: from the change taking effect to its confirmation.
            effective = _read_json(os.path.join(change_dir, EFFECTIVE))
            result['confirmed_after_effective_s'] = round(time.time() - float(effective['at']), 3)
        except (OSError, ValueError, KeyError):
            pass
        if status == 'stale':
            result['warnings'] = ['the rollback process of change %s was gone (the host rebooted?); '
                                  'confirming keeps its files' % change_id]
        _write_json(os.path.join(change_dir, 'confirmed'),
                    {'time': time.time(), 'confirmed_after_s': result['confirmed_after_s']})
        result['rollback_pid'] = _kill_rollback(change_dir)
    result['pruned'] = prune(state_dir)
    result['msg'] = 'confirmed change %s %s s after it was applied' % (change_id, result['confirmed_after_s'])
    return result


def _report(change_dir, change_id, plan, result, waited, connected_at=None):
    status = change_status(change_dir)
    result['status'] = status
    if status == 'confirmed':
        record = _read_json(os.path.join(change_dir, 'confirmed'))
        result['confirmed_after_s'] = record.get('confirmed_after_s')
        result['msg'] = 'change %s was already confirmed' % change_id
        return result
    if status == 'rolled_back':
        record = _read_json(os.path.join(change_dir, 'rolled_back'))
        late = _late_confirm(change_dir, record, connected_at)
        if late is not None:
            raise CommitError(
                'change %s was rolled back by the host %s s after it took effect, although this new connection '
                'reached the host %s s after the change took effect (both by the clock of the host): the host was '
                'reachable, but too slow to run the confirm within the %s s window'
                % (change_id, record.get('seconds_after_effective', '?'), late, record.get('timeout', '?')),
                rollback=record, late_confirm=True, connected_after_effective_s=late, **result)
        raise CommitError(_rolled_back_msg(change_id, record), rollback=record, late_confirm=False, **result)
    if status == 'aborted':
        record = _read_json(os.path.join(change_dir, 'aborted'))
        raise CommitError('change %s was never applied: %s' % (change_id, record.get('reason')), **result)
    if status == 'pending':
        left = effective_deadline(change_dir, plan) - time.time()
        if waited:
            raise CommitError('change %s is still pending %d s after its rollback deadline: the rollback '
                              'has not finished; see %s' % (change_id, -left, os.path.join(change_dir, 'rollback.log')),
                              **result)
        result['msg'] = 'change %s is pending; its rollback fires in %d s' % (change_id, max(left, 0))
        return result
    raise CommitError('change %s was neither confirmed nor rolled back and its rollback process is gone '
                      '(the host rebooted?): its files stayed in place' % change_id, **result)
