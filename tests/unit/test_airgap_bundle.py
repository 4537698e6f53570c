# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/airgap-bundle.yml against a k3s release served over HTTP from a local directory.

The release holds real files (a binary-sized blob of random bytes, an images tarball, the
sums file k3s publishes, install.sh), laid out and named as k3s's release is. The server can
cut a transfer short or list a wrong sum, so the download-and-verify machinery is tested:
a whole bundle the k3s role accepts, a second run that changes nothing, a cut transfer tried
again, a checksum that differs refused with nothing of the file left.

The EXO artifact is a small real tarball with a MANIFEST.json as docs/exo.md defines it,
served beside the release (a URL base) or read from its directory: staged as the exo role
reads an artifact directory, a wrong sha256 or a ref that is not the exo role's pin refused
with no MANIFEST.json left in the bundle.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import threading

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.filter.k3s import k3s_artifacts
from ansible_collections.aicluster.lab.plugins.module_utils import exo

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = "v1.31.0+k3s1"
FILES = {"k3s": 300_000, "k3s-airgap-images-amd64.tar.zst": 500_000}
EXO_REF = yaml.safe_load((ROOT / "roles/exo/defaults/main.yml").read_text())["exo_ref"]
ARCHIVE = f"exo-{EXO_REF[:7]}-mlx-cpu-x86_64.tar.gz"


class Release(http.server.SimpleHTTPRequestHandler):
    """Serves the directory; the names in ``cut`` get half their body once, then the whole."""

    cut: set = set()
    requests: list = []

    def log_message(self, *args):  # quiet: pytest shows the playbook's output instead
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        type(self).requests.append(name)
        if name in self.cut:
            self.cut.discard(name)
            body = pathlib.Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(name="release")
def fixture_release(tmp_path):
    served = tmp_path / "served"
    tag = served / VERSION  # the URL carries it encoded (v1.31.0%2Bk3s1), the server decodes it
    tag.mkdir(parents=True)
    sums = []
    for name, size in FILES.items():
        data = os.urandom(size)
        (tag / name).write_bytes(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (tag / "sha256sum-amd64.txt").write_text("\n".join(sums) + "\n")
    (served / "install.sh").write_text("#!/bin/sh\necho 'k3s install script (test copy)'\n")
    Release.cut, Release.requests = set(), []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Release, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"tag": tag, "url": f"http://127.0.0.1:{server.server_address[1]}", "bundle": tmp_path / "bundle"}
    server.shutdown()


def exo_artifact(directory, **change):
    """An EXO artifact as docs/exo.md defines it, in ``directory``: a tarball of the prefix's
    tree (the entry point and a blob big enough to cut) and MANIFEST.json naming it."""
    tree = directory.parent / "tree"
    (tree / "exo/.venv/bin").mkdir(parents=True, exist_ok=True)
    (tree / "exo/.venv/bin/exo").write_text("#!/bin/sh\necho 'exo (test artifact)'\n")
    (tree / "exo/payload.bin").write_bytes(os.urandom(200_000))  # random: gzip cannot shrink it
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / ARCHIVE, "w:gz") as archive:
        archive.add(tree / "exo", arcname="exo")
    manifest = {"ref": EXO_REF, "extra": "mlx-cpu", "arch": "x86_64", "prefix": "/opt/exo", "archive": ARCHIVE,
                "sha256": hashlib.sha256((directory / ARCHIVE).read_bytes()).hexdigest(),
                "entrypoint": "exo/.venv/bin/exo", "python": "3.13.5", **change}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


def bundle(release, *extra, exo_artifact_at=""):
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               ANSIBLE_NOCOLOR="1")
    variables = {"airgap_dir": str(release["bundle"]), "airgap_k3s_release_url": release["url"],
                 "airgap_k3s_install_script_url": release["url"] + "/install.sh", "airgap_retry_delay_s": 0,
                 "airgap_exo_artifact": exo_artifact_at}
    return subprocess.run(["ansible-playbook", "playbooks/airgap-bundle.yml", "-e", json.dumps(variables), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def changed(run):
    return int(run.stdout.rsplit("localhost", 1)[1].split("changed=")[1].split()[0])


def test_a_whole_bundle_the_k3s_role_accepts_and_a_second_run_changes_nothing(release):
    run = bundle(release)
    assert run.returncode == 0, run.stdout[-3000:]
    k3s_dir = release["bundle"] / f"k3s-{VERSION}"
    for name in [*FILES, "sha256sum-amd64.txt", "install.sh"]:
        assert (k3s_dir / name).read_bytes() == ((release["tag"] / name) if name != "install.sh"
                                                 else release["tag"].parent / name).read_bytes(), name
    assert os.stat(k3s_dir / "k3s").st_mode & 0o777 == 0o755
    # The k3s role's own check of an air-gap directory passes on it.
    verified = k3s_artifacts(str(k3s_dir), ["amd64"], True)
    assert verified["amd64"]["binary"]["name"] == "k3s" and verified["amd64"]["images"]["name"].endswith(".tar.zst")
    manifest = json.loads((release["bundle"] / "manifest.json").read_text())
    assert manifest["k3s"]["version"] == VERSION and manifest["k3s"]["dir"] == f"k3s-{VERSION}"
    assert manifest["k3s"]["sha256"]["k3s"] == hashlib.sha256((k3s_dir / "k3s").read_bytes()).hexdigest()
    assert manifest["k3s"]["bytes"]["k3s-airgap-images-amd64.tar.zst"] == FILES["k3s-airgap-images-amd64.tar.zst"]
    assert f"AICLUSTER_K3S_ARTIFACTS={k3s_dir}" in run.stdout
    # No EXO artifact given: none bundled, and the manifest says so.
    assert manifest["exo"] == {"skipped": "no EXO artifact: airgap_exo_artifact is empty"}
    assert not (release["bundle"] / "exo").exists()
    again = bundle(release)
    assert again.returncode == 0 and changed(again) == 0, again.stdout[-3000:]


def test_a_transfer_cut_short_is_tried_again(release):
    Release.cut = {"k3s"}
    run = bundle(release)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "FAILED - RETRYING" in run.stdout, run.stdout[-3000:]
    assert (release["bundle"] / f"k3s-{VERSION}" / "k3s").read_bytes() == (release["tag"] / "k3s").read_bytes()


def test_a_checksum_that_differs_is_refused_and_nothing_of_the_file_is_left(release):
    sums = release["tag"] / "sha256sum-amd64.txt"
    sums.write_text(sums.read_text().replace(sums.read_text()[:64], "0" * 64, 1))  # the binary's line
    run = bundle(release)
    assert run.returncode != 0, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert "(item=k3s)" in text and f"did not match {'0' * 64}; it was" in text, run.stdout[-3000:]
    # Refused at once, not tried again: one download of the binary.
    assert Release.requests.count("k3s") == 1, Release.requests
    k3s_dir = release["bundle"] / f"k3s-{VERSION}"
    assert not (k3s_dir / "k3s").exists() and not (release["bundle"] / "manifest.json").exists()
    assert sorted(path.name for path in k3s_dir.iterdir()) == ["sha256sum-amd64.txt"]


def test_check_mode_downloads_nothing_and_a_relative_directory_is_refused(release):
    run = bundle(release, "--check")
    assert run.returncode == 0 and changed(run) > 0, run.stdout[-3000:]
    assert not release["bundle"].exists() or not any(release["bundle"].rglob("k3s"))
    relative = bundle(release, "-e", "airgap_dir=bundle")
    assert relative.returncode != 0
    assert 'airgap_dir: "bundle" is not an absolute path' in relative.stdout, relative.stdout[-2000:]


def test_the_bundle_pins_the_release_the_k3s_role_pins():
    k3s = yaml.safe_load((ROOT / "roles/k3s/defaults/main.yml").read_text())
    airgap = yaml.safe_load((ROOT / "roles/airgap/defaults/main.yml").read_text())
    assert airgap["airgap_k3s_version"] == k3s["k3s_version"]
    assert airgap["airgap_k3s_release_url"] == k3s["k3s_release_url"]


def snapshot(directory):
    return {str(path.relative_to(directory)): (path.stat().st_mtime_ns, path.read_bytes())
            for path in sorted(directory.rglob("*")) if path.is_file()}


def test_the_exo_artifact_staged_as_the_exo_role_reads_it_a_cut_transfer_tried_again(release):
    source = exo_artifact(release["tag"].parent / "exo-artifact")
    Release.cut = {ARCHIVE}
    run = bundle(release, exo_artifact_at=release["url"] + "/exo-artifact/")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "FAILED - RETRYING" in run.stdout and Release.requests.count(ARCHIVE) == 2, Release.requests
    exo_dir = release["bundle"] / "exo"
    assert sorted(path.name for path in exo_dir.iterdir()) == ["MANIFEST.json", ARCHIVE]
    for name in (ARCHIVE, "MANIFEST.json"):
        assert (exo_dir / name).read_bytes() == (source / name).read_bytes(), name
    # What the exo role does with exo_artifact_dir=<bundle>/exo (tasks/decide.yml): MANIFEST.json
    # fits the pin and a host of its extra and arch, the archive it names has its sha256, and it unpacks.
    manifest = json.loads((exo_dir / "MANIFEST.json").read_text())
    assert exo.manifest_problems(manifest, EXO_REF, "mlx-cpu", "x86_64", "/opt/exo") == []
    assert hashlib.sha256((exo_dir / manifest["archive"]).read_bytes()).hexdigest() == manifest["sha256"]
    with tarfile.open(exo_dir / manifest["archive"]) as archive:
        assert manifest["entrypoint"] in archive.getnames()
    entry = json.loads((release["bundle"] / "manifest.json").read_text())["exo"]
    assert entry["ref"] == EXO_REF and entry["dir"] == "exo" and entry["install"] == f"exo_artifact_dir={exo_dir}"
    assert entry["sha256"] == {"MANIFEST.json": hashlib.sha256((source / "MANIFEST.json").read_bytes()).hexdigest(),
                               ARCHIVE: manifest["sha256"]}
    assert entry["bytes"][ARCHIVE] == (source / ARCHIVE).stat().st_size
    assert f"offline hosts: exo_artifact_dir={exo_dir}" in " ".join(run.stdout.split())
    # A second run changes nothing; --check neither.
    before = snapshot(release["bundle"])
    again = bundle(release, exo_artifact_at=release["url"] + "/exo-artifact")
    assert again.returncode == 0 and changed(again) == 0, again.stdout[-3000:]
    check = bundle(release, "--check", exo_artifact_at=release["url"] + "/exo-artifact")
    assert check.returncode == 0, check.stdout[-3000:]
    assert snapshot(release["bundle"]) == before


def test_an_exo_archive_whose_sha256_differs_is_refused_with_nothing_left_then_a_directory_stages(release):
    source = exo_artifact(release["tag"].parent.parent / "exo-artifact", sha256="0" * 64)
    run = bundle(release, exo_artifact_at=str(source))  # a directory on this host: read as file://
    assert run.returncode != 0, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert f"refused ({release['bundle'] / 'exo'} keeps no MANIFEST.json)" in text, run.stdout[-3000:]
    assert f"did not match {'0' * 64}; it was" in text and "FAILED - RETRYING" not in text, run.stdout[-3000:]
    assert list((release["bundle"] / "exo").iterdir()) == [] and not (release["bundle"] / "manifest.json").exists()
    # The right sum: the same directory stages.
    exo_artifact(source)
    fixed = bundle(release, exo_artifact_at=str(source))
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    for name in (ARCHIVE, "MANIFEST.json"):
        assert (release["bundle"] / "exo" / name).read_bytes() == (source / name).read_bytes(), name
    assert json.loads((release["bundle"] / "manifest.json").read_text())["exo"]["source"] == f"file://{source}"


def test_an_exo_artifact_of_another_ref_is_refused_naming_both_and_a_relative_one_too(release):
    exo_artifact(release["tag"].parent / "exo-artifact", ref="1" * 40)
    run = bundle(release, exo_artifact_at=release["url"] + "/exo-artifact")
    assert run.returncode != 0, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert f"it was built from {'1' * 40}, the role pins {EXO_REF} (exo_ref)" in text, run.stdout[-3000:]
    # Refused before the archive and before k3s's files are asked for.
    assert ARCHIVE not in Release.requests and "k3s" not in Release.requests, Release.requests
    assert list((release["bundle"] / "exo").iterdir()) == [] and not (release["bundle"] / "manifest.json").exists()
    relative = bundle(release, exo_artifact_at="exo-artifact")
    assert relative.returncode != 0
    assert 'airgap_exo_artifact: "exo-artifact" is neither a URL base' in relative.stdout, relative.stdout[-2000:]
