#!/usr/bin/env bash
# Run ansible-test sanity on a copy of this checkout laid out as
# ansible_collections/aicluster/lab, as ansible-test requires.
# usage: scripts/sanity.sh [ansible-test sanity args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/aicluster/lab"
mkdir -p "$dest"
# Tracked files plus new ones not ignored: what a commit of this tree would hold.
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$ROOT" && xargs -0 cp --parents -t "$dest" 2>/dev/null || true)
cd "$dest"
# ansible-test bootstraps pip in its venvs with a script from its own server; where
# only the package index is reachable, a local stand-in does the same job.
pip_version="$(python -c 'import ansible_test, pathlib, re
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", src).group(1))' 2>/dev/null)" || pip_version=""
if [ -n "$pip_version" ]; then
  shim="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
  [ -f "$shim" ] || { mkdir -p "$(dirname "$shim")"; cp "$ROOT/scripts/get_pip_shim.py" "$shim"; }
fi
python_version="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
ansible-test sanity --color no --python "$python_version" --requirements "$@"
