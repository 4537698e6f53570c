"""Stand-in for the pip bootstrap script ansible-test downloads from its own server.

ansible-test runs the script as `python get_pip.py <pip install arguments>` inside a
fresh venv. Where that server cannot be reached, the same job is done with the
interpreter's own ensurepip and then pip itself, from the package index.
"""

import runpy
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
# get-pip's own flags, which pip install does not know.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install"] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
