# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EXO's API answers (JSON shaped by EXO's own models at the pinned ref, fixtures/exo/README.md)
and the kernel's socket table (ss output captured in namespaces)."""

import json
import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import exo_api
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "exo"
N1, N2 = "9f1c0d2e4b7a4c1e8d3f6a5b2c1d0e9f", "4e8b2a7c9d1f0e3b5a6c7d8e9f0a1b2c"


def text(name):
    return (FIXTURES / name).read_text()


def test_node_id():
    assert exo_api.parse_node_id(text("api-node-id.json")) == N1


@pytest.mark.parametrize("body", ['"0abc"', '"xyz"', '"' + "a" * 33 + '"', "42", "not json"])
def test_what_is_not_a_node_id_is_refused(body):
    with pytest.raises(exo_api.ExoApiError):
        exo_api.parse_node_id(body)


def test_a_fresh_node_knows_no_node():
    state = exo_api.parse_state(text("api-state-fresh.json"))
    assert (state["nodes"], state["ready"], state["live"], state["edges"]) == ([], [], [], [])


def test_two_nodes_ready_and_live_with_an_edge_each_way_on_the_cluster():
    state = exo_api.parse_state(text("api-state-two-nodes.json"))
    assert state["ready"] == state["live"] == sorted([N1, N2])
    assert state["identities"][N1] == {"friendly_name": "node1", "model_id": "Unknown Model", "chip_id": "Unknown Chip",
                                       "os_version": "Linux"}
    assert state["memory"][N2]["ram_total"] == 1027395584
    assert sorted((e["source"], e["sink"], e["kind"], e["address"], e["port"]) for e in state["edges"]) == [
        (N2, N1, "socket", "192.168.200.11", 52415), (N1, N2, "socket", "192.168.200.12", 52415)]
    assert state["backends"][N1] == ["MlxCpu"]
    assert [i["name"] for i in state["network"][N1]] == ["lo", "eth0", "bond0.100", "bond0.200"]


def test_a_timed_out_node_is_no_longer_live_but_keeps_its_identity():
    state = exo_api.parse_state(text("api-state-node2-timed-out.json"))
    assert state["live"] == state["ready"] == [N1]
    assert N2 in state["identities"] and N2 not in state["memory"] and N2 not in state["last_seen"]


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("nodeMemory"), "lacks nodeMemory"),
    (lambda s: s.__setitem__("topology", {"nodes": []}), "topology is not"),
    (lambda s: s["nodeMemory"][N1].__setitem__("ramTotal", 5), "memory figure"),
    (lambda s: s["topology"]["connections"][N1][N2].append({"weird": 1}), "neither a socket nor an RDMA"),
])
def test_a_state_not_shaped_as_exos_is_refused(mutate, message):
    state = json.loads(text("api-state-two-nodes.json"))
    mutate(state)
    with pytest.raises(exo_api.ExoApiError, match=message):
        exo_api.parse_state(json.dumps(state))


def test_an_rdma_edge():
    state = json.loads(text("api-state-two-nodes.json"))
    state["topology"]["connections"][N1][N2].append({"sourceRdmaIface": "rdma_en3", "sinkRdmaIface": "rdma_en4"})
    edges = exo_api.parse_state(state)["edges"]
    assert {"source": N1, "sink": N2, "kind": "rdma", "address": "rdma_en4", "port": None,
            "source_iface": "rdma_en3"} in edges


def test_place_await_and_chat():
    assert exo_api.parse_place(text("api-place-instance.json")) == {
        "message": "Command received.", "command_id": "5b0e6f7a-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
        "model_id": "mlx-community/Llama-3.2-1B-Instruct-4bit"}
    assert exo_api.parse_await(text("api-await-ready.txt")) == {
        "ready": True, "message": "ready", "instance_id": "8c7b6a59-4e3d-4c2b-9a1f-0e9d8c7b6a59"}
    assert exo_api.parse_await(text("api-await-timeout.txt"))["ready"] is False
    assert exo_api.parse_chat(text("api-chat-completion.json")) == {
        "model": "mlx-community/Llama-3.2-1B-Instruct-4bit", "content": "Hello!", "finish_reason": "stop",
        "completion_tokens": 3}


def test_await_without_an_event_and_a_chat_that_is_not_one_are_refused():
    with pytest.raises(exo_api.ExoApiError, match="no ready or timeout"):
        exo_api.parse_await(": keep-alive\n\n")
    with pytest.raises(exo_api.ExoApiError, match="not a chat.completion"):
        exo_api.parse_chat('{"error": {"message": "No instance found", "type": "x", "code": 404}}')


def test_sockets_on_the_cluster_interface_and_elsewhere():
    node1 = exo_api.parse_sockets(text("netns-ss-node1-with-management.txt"))
    by_peer = {(s["local"], s["scope"], s["peer"]) for s in node1}
    assert ("192.168.155.11", None, "192.168.155.12") in by_peer          # dual-stack socket, IPv4 peer unmapped
    assert ("192.168.200.11", None, "192.168.200.12") in by_peer
    assert any(s["scope"] == "bond0.200" and s["local"].startswith("fe80::") and s["local_port"] == 52414 for s in node1)
    assert all(s["rtt_ms"] is not None and s["process"] == "python" for s in node1)
    node2 = exo_api.parse_sockets(text("netns-ss-node2-with-management.txt"))
    assert sorted(s["peer_port"] for s in node2) == [52414, 52414, 52414]
    assert any(s["scope"] == "bond0.200" for s in node2)


def test_a_socket_line_that_is_not_sss_is_refused():
    with pytest.raises(exo_api.ExoApiError):
        exo_api.parse_sockets("State Recv-Q Send-Q Local Peer")


def test_probe_sections_and_answers():
    probe = "### node_id\nstatus 200\nseconds 0.012\n\"abc\"\n### state\nerror ConnectionRefusedError: [Errno 111]\nseconds 0.001\n\n"
    parts = sections(probe)
    assert exo_api.answer(parts["node_id"]) == {"status": 200, "error": None, "seconds": 0.012, "body": '"abc"'}
    assert exo_api.answer(parts["state"])["error"].startswith("ConnectionRefusedError")
    assert exo_api.answer(None)["error"] == "no answer"
