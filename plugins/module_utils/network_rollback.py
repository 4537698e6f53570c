# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollback of a commit-confirmed network change, run on the host itself.

network_apply copies this file's own source into each change dir as ``rollback.py`` and
runs it with the host's Python, detached (``arm``: sleep until the deadline, restore
unless confirmed) or at once (``now``: undo a change that failed half-way). It uses the
standard library only and imports nothing of the collection, because it must run after
the module that started it has exited. Everything it needs is in the change dir's
plan.json and manifest.json; it decides nothing beyond what exists at that moment.

network_commit imports read_owned and atomic_write from here, so the host's rollback
and the module read and write files the same way.

usage: python3 rollback.py CHANGE_DIR arm|now [REASON]
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time


def log(msg):
    sys.stdout.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), msg))
    sys.stdout.flush()


def load(path):
    with open(path) as handle:
        return json.load(handle)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode, uid=None, gid=None):
    """Write through a temp file and rename, so networkd never reads half a file.

    The temp name starts with '.' and ends in '.tmp': neither owned nor read by networkd.
    The owner is set only when given and running as root.
    """
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None and os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def run(argv, timeout):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {'argv': argv, 'rc': None, 'stdout': '', 'stderr': str(exc)}
    return {'argv': argv, 'rc': proc.returncode,
            'stdout': proc.stdout.decode('utf-8', 'replace')[-4000:],
            'stderr': proc.stderr.decode('utf-8', 'replace')[-4000:]}


def read_owned(directory, prefix):
    """Owned entries of directory: regular files and symlinks whose name starts with prefix.

    Each is {symlink, data, mode, uid, gid}. Directories (drop-in .d directories) are never
    owned: they are neither read nor removed.
    """
    owned = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return owned
    for name in sorted(names):
        if not name.startswith(prefix):
            continue
        path = os.path.join(directory, name)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if os.path.isdir(path):
                continue
            owned[name] = {'symlink': os.readlink(path), 'data': None, 'mode': None,
                           'uid': st.st_uid, 'gid': st.st_gid}
        elif stat.S_ISREG(st.st_mode):
            with open(path, 'rb') as handle:
                owned[name] = {'symlink': None, 'data': handle.read(), 'mode': stat.S_IMODE(st.st_mode),
                               'uid': st.st_uid, 'gid': st.st_gid}
    return owned


def _is_link(entry, target):
    return entry is not None and entry['symlink'] == target


def _is_file(entry, data, mode):
    return entry is not None and entry['symlink'] is None and entry['data'] == data and entry['mode'] == mode


def restore(change_dir, trigger, reason):
    plan = load(os.path.join(change_dir, 'plan.json'))
    manifest = load(os.path.join(change_dir, 'manifest.json'))
    directory, prefix = plan['directory'], plan['prefix']
    started = time.time()
    record = {'change_id': plan['change_id'], 'trigger': trigger, 'reason': reason,
              'armed_at': plan['armed_at'], 'deadline': plan['deadline'],
              'restored': [], 'removed': [], 'refreshed': [], 'devices_deleted': [],
              'reconfigured': [], 'commands': [], 'errors': []}
    try:
        now = read_owned(directory, prefix)
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        now = {}
        record['errors'].append('reading %s: %s' % (directory, exc))
    for name in sorted(set(now) - set(manifest['files'])):
        try:
            os.unlink(os.path.join(directory, name))
            record['removed'].append(name)
        except OSError as exc:
            record['errors'].append('removing %s: %s' % (name, exc))
    refresh = set(plan['rollback']['refresh'])
    for name, meta in sorted(manifest['files'].items()):
        path = os.path.join(directory, name)
        try:
            if meta['symlink'] is not None:
                if not _is_link(now.get(name), meta['symlink']):
                    tmp = os.path.join(directory, '.%s.rollback.tmp' % name)
                    if os.path.lexists(tmp):
                        os.unlink(tmp)
                    os.symlink(meta['symlink'], tmp)
                    os.rename(tmp, path)
                    record['restored'].append(name)
                continue
            with open(os.path.join(change_dir, 'before', name), 'rb') as handle:
                data = handle.read()
            unchanged = _is_file(now.get(name), data, meta['mode'])
            if not unchanged or name in refresh:
                atomic_write(path, data, meta['mode'], meta.get('uid'), meta.get('gid'))
                (record['refreshed'] if unchanged else record['restored']).append(name)
        except OSError as exc:
            record['errors'].append('restoring %s: %s' % (name, exc))
    try:
        fsync_dir(directory)
    except OSError:
        pass
    timeout = plan['command_timeout']
    for dev in plan['rollback']['delete']:
        if os.path.lexists(os.path.join(plan['sys_class_net'], dev)):
            result = run(plan['ip'] + ['link', 'delete', dev], timeout)
            record['commands'].append(result)
            if result['rc'] == 0:
                record['devices_deleted'].append(dev)
            else:
                record['errors'].append('deleting device %s: rc %s' % (dev, result['rc']))
    if record['devices_deleted']:
        time.sleep(plan['settle'])
    for argv in plan['reload']:
        result = run(argv, timeout)
        record['commands'].append(result)
        if result['rc'] != 0:
            record['errors'].append('%s: rc %s' % (' '.join(argv), result['rc']))
    if plan['rollback']['restart']:
        # A stacked netdev (VLAN, ...) keeps its definition through a reload; a restart
        # also reconfigures every link.
        result = run(plan['restart_networkd'], timeout)
        record['commands'].append(result)
        if result['rc'] != 0:
            record['errors'].append('%s: rc %s' % (' '.join(plan['restart_networkd']), result['rc']))
    # The reload already reconfigures these links, except failed ones; once more by name
    # costs a second reconfiguration on a host that is cut off anyway.
    links = [link for link in plan['rollback']['reconfigure']
             if os.path.lexists(os.path.join(plan['sys_class_net'], link))]
    if links and not plan['rollback']['restart']:
        result = run(plan['networkctl'] + ['reconfigure'] + links, timeout)
        record['commands'].append(result)
        if result['rc'] == 0:
            record['reconfigured'] = links
        else:
            record['errors'].append('reconfigure %s: rc %s' % (' '.join(links), result['rc']))
    record['rolled_back_at'] = time.time()
    record['seconds_after_arming'] = round(record['rolled_back_at'] - plan['armed_at'], 3)
    record['timeout'] = plan['timeout']
    try:
        with open(os.path.join(change_dir, 'effective')) as handle:
            record['seconds_after_effective'] = round(record['rolled_back_at'] - json.load(handle)['at'], 3)
    except (IOError, OSError, ValueError, KeyError):
        pass
    record['duration_s'] = round(record['rolled_back_at'] - started, 3)
    atomic_write(os.path.join(change_dir, 'rolled_back'),
                 (json.dumps(record, indent=2, sort_keys=True) + '\n').encode(), 0o600)
    log('rolled back: restored %s, removed %s, devices deleted %s, errors %s'
        % (record['restored'], record['removed'], record['devices_deleted'], record['errors']))
    return record


def locked_restore(change_dir, trigger, reason):
    with open(os.path.join(change_dir, 'lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for marker in ('confirmed', 'rolled_back'):
            if os.path.exists(os.path.join(change_dir, marker)):
                log('%s exists, nothing to do' % marker)
                return 0
        restore(change_dir, trigger, reason)
    return 0


def arm(change_dir):
    pid = os.fork()
    if pid:
        atomic_write(os.path.join(change_dir, 'pid'), ('%d\n' % pid).encode(), 0o600)
        os._exit(0)
    # No terminal in this session, but a stray SIGHUP must not end the timer either.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    plan = load(os.path.join(change_dir, 'plan.json'))
    log('armed: pid %d, rollback at %s unless %s exists'
        % (os.getpid(), time.strftime('%H:%M:%SZ', time.gmtime(plan['deadline'])),
           os.path.join(change_dir, 'confirmed')))
    end = time.monotonic() + max(0.0, plan['deadline'] - time.time())
    effective = False
    while True:
        # The window restarts when network_apply marks the change in effect (reload done).
        if not effective and os.path.exists(os.path.join(change_dir, 'effective')):
            effective = True
            end = max(end, time.monotonic() + plan['timeout'])
            log('the change is in effect: rollback in %s s unless confirmed' % plan['timeout'])
        left = end - time.monotonic()
        if left <= 0:
            if not effective:
                # network_apply holds the lock until the change is in effect or undone:
                # wait for it, then look again (the window starts when it took effect).
                with open(os.path.join(change_dir, 'lock'), 'a') as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                if os.path.exists(os.path.join(change_dir, 'effective')):
                    continue
            break
        if os.path.exists(os.path.join(change_dir, 'confirmed')):
            log('confirmed, exiting')
            return 0
        time.sleep(min(left, 0.5))
    return locked_restore(change_dir, 'timeout', 'not confirmed within %s s of the change taking effect' % plan['timeout'])


def main(argv):
    change_dir = os.path.abspath(argv[1])
    if argv[2] == 'arm':
        return arm(change_dir)
    return locked_restore(change_dir, 'apply-failed', argv[3] if len(argv) > 3 else 'rollback requested')


if __name__ == '__main__':
    raise SystemExit(main(sys.argv))
