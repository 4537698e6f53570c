# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's live probe (roles/exo/files/exo-probe.py), run as the role runs it - a python3
process - against stand-ins of EXO's API that answer with the fixtures (EXO's own shapes), and
judged by the role's verdicts. A stopped node is a stand-in that closes its port."""

import json
import pathlib
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import exo_verdict

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBE = ROOT / "roles" / "exo" / "files" / "exo-probe.py"
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "exo"
N1, N2, N2_NEW = "9f1c0d2e4b7a4c1e8d3f6a5b2c1d0e9f", "4e8b2a7c9d1f0e3b5a6c7d8e9f0a1b2c", "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"


def fixture(name):
    return (FIXTURES / name).read_text()


class FakeExo:
    """A stand-in of one node's API: answers from ``self.routes`` ({(method, path): (status, body)})."""

    def __init__(self, port=0):
        self.routes = {}
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((method, self.path, self.rfile.read(length).decode() if length else ""))
                status, body = outer.routes.get((method, self.path.split("?")[0]), (404, '{"detail": "Not Found"}'))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - the http.server interface
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def state_with(*nodes):
    """The two-node fixture with node2's id replaced, or node2 timed out when only node1 is named."""
    if nodes == (N1,):
        return fixture("api-state-node2-timed-out.json")
    return fixture("api-state-two-nodes.json").replace(N2, nodes[1])


def probe(*args, timeout=60):
    return subprocess.run([sys.executable, "-", *args], input=PROBE.read_text(), capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def test_read_waits_until_every_node_is_ready_and_live():
    node = FakeExo()
    try:
        node.routes[("GET", "/node_id")] = (200, fixture("api-node-id.json"))
        node.routes[("GET", "/state")] = (200, state_with(N1))
        timer = threading.Timer(1.0, lambda: node.routes.__setitem__(("GET", "/state"), (200, state_with(N1, N2))))
        timer.start()
        out = probe("read", "--api-port", str(node.port), "--expect", "2", "--timeout", "30")
    finally:
        node.stop()
    record, node_id = exo_verdict.node_id_check(out)
    assert node_id == N1 and record["passed"]
    state = exo_verdict.cluster_state_check(out, {"node1": N1, "node2": N2}, "192.168.200.0/24")
    assert state["passed"], state
    assert 0.9 <= state["figures"]["wait_s"] < 10


def test_read_gives_up_at_its_timeout():
    node = FakeExo()
    try:
        node.routes[("GET", "/node_id")] = (200, fixture("api-node-id.json"))
        node.routes[("GET", "/state")] = (200, state_with(N1))
        out = probe("read", "--api-port", str(node.port), "--expect", "2", "--timeout", "1")
    finally:
        node.stop()
    state = exo_verdict.cluster_state_check(out, {"node1": N1, "node2": N2})
    assert not state["passed"] and "not live: node2 (4e8b" in state["message"]


def test_read_of_a_node_that_does_not_answer():
    node = FakeExo()
    port = node.port
    node.stop()
    out = probe("read", "--api-port", str(port))
    record, node_id = exo_verdict.node_id_check(out)
    assert node_id is None and not record["passed"] and "GET /node_id: " in record["message"]


def test_chat_places_awaits_and_times_one_completion():
    node = FakeExo()
    try:
        node.routes[("GET", "/state")] = (200, state_with(N1, N2))
        node.routes[("POST", "/place_instance")] = (200, fixture("api-place-instance.json"))
        node.routes[("GET", "/instance/await")] = (200, fixture("api-await-ready.txt"))
        node.routes[("POST", "/v1/chat/completions")] = (200, fixture("api-chat-completion.json"))
        out = probe("chat", "--api-port", str(node.port), "--model", "mlx-community/Llama-3.2-1B-Instruct-4bit",
                    "--max-tokens", "8", "--timeout", "60")
    finally:
        node.stop()
    record = exo_verdict.chat_check(out, "mlx-community/Llama-3.2-1B-Instruct-4bit")
    assert record["passed"], record
    assert record["figures"]["completion_tokens"] == 3 and record["figures"]["latency_s"] >= 0
    posted = {path: json.loads(body) for method, path, body in node.requests if method == "POST"}
    assert posted["/place_instance"] == {"model_id": "mlx-community/Llama-3.2-1B-Instruct-4bit", "min_nodes": 1}
    assert posted["/v1/chat/completions"]["max_tokens"] == 8 and posted["/v1/chat/completions"]["stream"] is False


def test_chat_without_an_instance_fails_with_the_reason():
    node = FakeExo()
    try:
        node.routes[("GET", "/state")] = (200, state_with(N1, N2))
        node.routes[("POST", "/place_instance")] = (200, fixture("api-place-instance.json"))
        node.routes[("GET", "/instance/await")] = (200, fixture("api-await-timeout.txt"))
        out = probe("chat", "--api-port", str(node.port), "--model", "m", "--timeout", "5")
    finally:
        node.stop()
    record = exo_verdict.chat_check(out, "m")
    assert not record["passed"] and "No instance found" in record["message"]


@pytest.mark.parametrize("same_id", [False, True], ids=["stop (a new node id)", "partition (the same id)"])
def test_watch_times_the_drop_and_the_rejoin(same_id):
    observer, victim = FakeExo(), FakeExo()
    port = victim.port
    observer.routes[("GET", "/state")] = (200, state_with(N1, N2))
    victim.routes[("GET", "/node_id")] = (200, json.dumps(N2))
    back_id = N2 if same_id else N2_NEW
    replacement = {}

    def fault():
        # The fault starts once the watch has seen the cluster whole: on a busy host the
        # probe's python took more than a second to start, and then it saw only the outage.
        deadline = time.monotonic() + 20
        while not observer.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        victim.stop()
        time.sleep(1.0)
        observer.routes[("GET", "/state")] = (200, state_with(N1))
        time.sleep(1.0)
        replacement["victim"] = FakeExo(port)
        replacement["victim"].routes[("GET", "/node_id")] = (200, json.dumps(back_id))
        time.sleep(0.5)
        observer.routes[("GET", "/state")] = (200, state_with(N1, back_id))

    thread = threading.Thread(target=fault)
    thread.start()
    try:
        out = probe("watch", "--api-port", str(observer.port), "--victim-url", f"http://127.0.0.1:{port}",
                    "--timeout", "30", "--interval", "0.1")
    finally:
        thread.join()
        observer.stop()
        replacement["victim"].stop()
    dropped, rejoined = exo_verdict.chaos_checks(out, "partition" if same_id else "stop", "node2", N2, 2,
                                                 {"max_drop_s": 90, "max_rejoin_s": 120})
    assert dropped["passed"] and rejoined["passed"], (dropped, rejoined, out)
    assert 0.5 <= dropped["figures"]["detect_s"] <= 2.0
    assert 0.2 <= rejoined["figures"]["rejoin_s"] <= 1.5
    assert rejoined["figures"]["new_node_id"] == (0 if same_id else 1)
    assert json.loads(out.splitlines()[-1])["event"] == "end" and json.loads(out.splitlines()[-1])["t"] < 10
