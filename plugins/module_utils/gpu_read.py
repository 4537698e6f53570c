# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU read over plain sh, for the roles (filters gpu_read_script and gpu_read): a script that
prints what the gpu_facts module reads, and the parser that makes of its output the read
gpu.gather() takes (the shape is in gpu.py's docstring). A module call costs seconds on an
emulated guest; ``ansible.builtin.raw`` with this script costs a fraction of one.

The script is built here rather than kept as a role template: three roles run it (gpu, exo,
k3s), the vendor commands and sysfs attributes come from gpu.py's own lists (the ones the module
uses), each section is printed and parsed in this one file, and the tests point it at a temp tree
through its parameters.

It is POSIX sh (dash) and runs no process but the vendor tools: files are read with ``read``,
links resolved with ``cd -P``, directories listed with globs (a process costs tens of
milliseconds on an emulated guest; ``readlink`` is not in POSIX.1-2017 either). What it cannot
print unambiguously it does not meet in practice, and the parser refuses rather than guesses:
an attribute value is its first line (sysfs attributes have one), a name holding a newline would
split a line, and a tool line reading ``### <word>`` would open a section.
"""

from __future__ import annotations

import shlex

from ansible_collections.aicluster.lab.plugins.module_utils import gpu
from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.gpu_stack import OS_RELEASE
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections


class GpuReadError(InputError):
    """Output that is not what the script prints; the message says what is wrong."""


# Doubled braces are the shell's; {name} fields are filled in by script().
_READ = r'''# aicluster.lab GPU read: what the gpu_facts module reads, in sections for the gpu_read filter.
sysfs={sysfs} dev={dev} modules={modules} os_release={os_release}
# A file's lines (a last one without its newline too); nothing when it cannot be read.
lines() {{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done <"$1"; }} 2>/dev/null
printf '### pci_bus\n'
if [ -d "$sysfs/bus/pci" ]; then printf 'present\n'; fi
printf '### pci\n'
for d in "$sysfs"/bus/pci/devices/*; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  printf 'device %s\n' "${{d##*/}}"
  for a in {attributes}; do
    v=
    if read -r v 2>/dev/null <"$d/$a" || [ -n "$v" ]; then printf 'attr %s %s\n' "$a" "$v"; fi
  done
  for a in {links}; do
    if [ -L "$d/$a" ] && cd -P "$d/$a" 2>/dev/null; then printf 'link %s %s\n' "$a" "${{PWD##*/}}"; fi
  done
  for e in "$d"/drm/*; do
    if [ -e "$e" ] || [ -L "$e" ]; then printf 'drm %s\n' "${{e##*/}}"; fi
  done
done
cd /
printf '### modules\n'
lines "$modules"
printf '### device_nodes\n'
for f in "$dev"/nvidia* "$dev"/dri/renderD*; do
  if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
done
if [ -e "$dev/kfd" ]; then printf '%s\n' "$dev/kfd"; fi
printf '### os_release\n'
lines "$os_release"
'''

# A tool is looked for as the module's get_bin_path looks: the tool directories, PATH, then the
# sbin directories; it runs with no input, its stdout straight to the output, its stderr kept.
_TOOLS = r'''tool_dirs={tool_dirs}:$PATH:/sbin:/usr/sbin:/usr/local/sbin
run_tool() {{
  t=$1; shift; p=
  set -f; IFS=:
  for t_dir in $tool_dirs; do
    if [ -n "$t_dir" ] && [ -f "$t_dir/$t" ] && [ -x "$t_dir/$t" ]; then p=$t_dir/$t; break; fi
  done
  unset IFS; set +f
  [ -n "$p" ] || return 0
  printf '### tool:%s:stdout\n' "$t"
  err=$("$p" "$@" 2>&1 >&3 3>&- </dev/null)
  rc=$?
  printf '\n### tool:%s:stderr\n%s\n### tool:%s:rc\n%s\n' "$t" "$err" "$t" "$rc"
}}
exec 3>&1
{runs}
exec 3>&-
'''

_END = "printf '### end\\n'\n"


def _quote_words(words):
    return ' '.join(shlex.quote(word) for word in words)


def script(vendor_tools=True, sysfs_root=gpu.SYSFS_ROOT, dev_root=gpu.DEV_ROOT, proc_modules=gpu.PROC_MODULES,
           os_release=OS_RELEASE, tool_dirs=gpu.TOOL_DIRS):
    """The plain-sh read; the vendor tools are looked for and run only with vendor_tools. The
    roots are parameters for the tests, which point them at a temp tree; they must be absolute
    (the script changes directory to resolve links)."""
    roots = dict(sysfs=sysfs_root, dev=dev_root, modules=proc_modules, os_release=os_release)
    for name, path in sorted(roots.items()):
        if not str(path).startswith('/'):
            raise GpuReadError('gpu read script: the %s path must be absolute, got %r' % (name, path))
    text = _READ.format(attributes=_quote_words(gpu.SYSFS_ATTRIBUTES), links=_quote_words(gpu.SYSFS_LINKS),
                        **dict((name, shlex.quote(str(path))) for name, path in roots.items()))
    if vendor_tools:
        runs = '\n'.join('run_tool %s' % _quote_words([tool] + args) for tool, args in sorted(gpu.TOOL_COMMANDS.items()))
        text += _TOOLS.format(tool_dirs=shlex.quote(':'.join(tool_dirs)), runs=runs)
    return text + _END


def _pci(text):
    entries, entry = [], None
    for line in text.splitlines():
        kind, rest = (line.split(' ', 1) + [''])[:2]
        name, value = (rest.split(' ', 1) + [''])[:2]
        if kind == 'device' and rest:
            entry = gpu.pci_entry(rest)
            entries.append(entry)
        elif entry is None:
            raise GpuReadError('gpu read: section pci: %r comes before any device line' % line)
        elif kind == 'attr' and name in gpu.SYSFS_ATTRIBUTES:
            entry['attributes'][name] = value
        elif kind == 'link' and name in gpu.SYSFS_LINKS and value:
            entry[name] = value
        elif kind == 'drm' and rest:
            entry['drm'].append(rest)
        else:
            raise GpuReadError('gpu read: section pci: %r is not a line the script prints' % line)
    return entries


def _tools(found):
    tools = {}
    for tool in sorted(gpu.TOOL_COMMANDS):
        prefix = 'tool:%s:' % tool
        if prefix + 'rc' not in found:
            tools[tool] = None
            continue
        rc = found[prefix + 'rc'].strip()
        if not rc.isdigit():
            raise GpuReadError('gpu read: %s exit status %r is not a number' % (tool, rc))
        tools[tool] = {'rc': int(rc), 'stdout': found.get(prefix + 'stdout', ''),
                       'stderr': found.get(prefix + 'stderr', '')}
    return tools


def parse(text):
    """The read (gpu.py's shape) of what script() printed; GpuReadError when the output is not
    the script's whole output."""
    if not isinstance(text, str):
        raise GpuReadError('gpu read: the output must be text, got %r' % (text,))
    found = sections(text)
    if 'end' not in found:
        raise GpuReadError('gpu read: the output stops before the script\'s end (its last lines: %r)'
                           % '\n'.join(text.splitlines()[-5:]))
    return {
        'pci_bus': found.get('pci_bus', '').strip() == 'present',
        'pci': _pci(found.get('pci', '')),
        'modules': found.get('modules', ''),
        'device_nodes': [line for line in found.get('device_nodes', '').splitlines() if line],
        'os_release': found.get('os_release', ''),
        'tools': _tools(found),
    }
