# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/airgap-bundle.yml against a k3s release served over HTTP from a local directory.

The release holds real files (a binary-sized blob of random bytes, an images tarball, the
sums file k3s publishes, install.sh), laid out and named as k3s's release is. The server can
cut a transfer short or list a wrong sum, so the download-and-verify machinery is tested:
a whole bundle the k3s role accepts, a second run that changes nothing, a cut transfer tried
again, a checksum that differs refused with nothing of the file left.
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
import threading

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.filter.k3s import k3s_artifacts

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = "v1.31.0+k3s1"
FILES = {"k3s": 300_000, "k3s-airgap-images-amd64.tar.zst": 500_000}


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


def bundle(release, *extra):
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               ANSIBLE_NOCOLOR="1")
    variables = {"airgap_dir": str(release["bundle"]), "airgap_k3s_release_url": release["url"],
                 "airgap_k3s_install_script_url": release["url"] + "/install.sh", "airgap_retry_delay_s": 0}
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
