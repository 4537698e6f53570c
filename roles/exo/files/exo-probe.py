# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's live probe, run on a node with the node's own python3 (standard library only,
through ``raw``: no Ansible module, so no AnsiballZ cost on an emulated guest).

  read  --api-port P [--expect N --timeout T]
        /node_id and /state of the local node; with --expect, /state is read again until
        N nodes are ready (in nodeIdentities and nodeMemory) and live (in the topology and
        nodeMemory), or T seconds pass.
  chat  --api-port P --model M [--min-nodes K --max-tokens K --timeout T]
        an instance of M placed (unless one exists), awaited, then one chat completion timed.
  watch --api-port P --victim-url URL --timeout T [--interval S]
        one fault, timed on this node's clock: the victim's API (its /node_id at URL) and this
        node's /state are polled; events are printed as they happen, one JSON object a line.

Each answer is printed as a '### <name>' section: 'status <code>' or 'error <why>', then
'seconds <s>', then the body. The controller judges it (module_utils/exo_api.py, exo_verdict.py).
"""

import json
import sys
import time
import urllib.error
import urllib.request


def request(url, body=None, timeout=10.0):
    """(status, text, error, seconds) of one HTTP request; status None when none came back."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", "replace"), None, time.monotonic() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), None, time.monotonic() - start
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer is reported, not raised
        return None, "", f"{type(exc).__name__}: {exc}", time.monotonic() - start


def section(name, status, text, error, seconds):
    print(f"### {name}")
    print(f"status {status}" if status is not None else f"error {error}")
    print(f"seconds {seconds:.3f}")
    print(text)
    sys.stdout.flush()


def args_of(argv):
    found = {}
    for key, value in zip(argv[::2], argv[1::2]):
        found[key.lstrip("-").replace("-", "_")] = value
    return found


def counts(text):
    """(ready, live) node counts of a /state body; (0, 0) when it is not one."""
    try:
        state = json.loads(text)
        identities, memory = set(state["nodeIdentities"]), set(state["nodeMemory"])
        return len(identities & memory), len(set(state["topology"]["nodes"]) & memory)
    except (ValueError, KeyError, TypeError):
        return 0, 0


def read(opts):
    api = f"http://127.0.0.1:{opts['api_port']}"
    section("node_id", *request(f"{api}/node_id", timeout=5))
    expect, deadline = int(opts.get("expect", 0)), time.monotonic() + float(opts.get("timeout", 0))
    start = time.monotonic()
    while True:
        status, text, error = request(f"{api}/state", timeout=10)[:3]
        ready, live = counts(text) if status == 200 else (0, 0)
        if min(ready, live) >= expect or time.monotonic() >= deadline:
            break
        time.sleep(2)
    section("state", status, text, error, time.monotonic() - start)


def chat(opts):
    api, model = f"http://127.0.0.1:{opts['api_port']}", opts["model"]
    timeout = float(opts.get("timeout", 600))
    status, text = request(f"{api}/state", timeout=10)[:2]
    placed = False
    if status == 200:
        for instance in (json.loads(text).get("instances") or {}).values():
            inner = next(iter(instance.values()), {})
            placed = placed or inner.get("shardAssignments", {}).get("modelId") == model
    if placed:
        section("place", 200, json.dumps({"message": "an instance of the model exists", "command_id": None}), None, 0.0)
    else:
        section("place", *request(f"{api}/place_instance", {"model_id": model, "min_nodes": int(opts.get("min_nodes", 1))},
                                  timeout=60))
    wait = min(300, int(timeout))
    section("await", *request(f"{api}/instance/await?model_id={urllib.request.quote(model, safe='')}"
                              f"&timeout_seconds={wait}", timeout=wait + 30))
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello in one word."}],
            "max_tokens": int(opts.get("max_tokens", 16)), "stream": False}
    section("chat", *request(f"{api}/v1/chat/completions", body, timeout=timeout))


def watch(opts):
    """Events: start, victim_up (with its node id), victim_down, state (the live node ids, when they
    change), end. Ends once the victim went down, came back and is live again, or at the timeout."""
    api, victim = f"http://127.0.0.1:{opts['api_port']}", opts["victim_url"].rstrip("/")
    interval, deadline = float(opts.get("interval", 0.5)), time.monotonic() + float(opts["timeout"])
    start = time.monotonic()
    up, went_down, victim_id, live = None, False, None, None

    def event(kind, **fields):
        print(json.dumps(dict(fields, event=kind, t=round(time.monotonic() - start, 3))))
        sys.stdout.flush()

    event("start")
    while time.monotonic() < deadline:
        status, text = request(f"{victim}/node_id", timeout=1)[:2]
        if status == 200 and up is not True:
            victim_id = text.strip().strip('"')
            event("victim_up", node_id=victim_id)
        elif status != 200 and up is not False:
            event("victim_down")
            went_down = True
        up = status == 200
        status, text = request(f"{api}/state", timeout=5)[:2]
        if status == 200:
            try:
                state = json.loads(text)
                now = sorted(set(state["topology"]["nodes"]) & set(state["nodeMemory"]))
            except (ValueError, KeyError, TypeError):
                now = None
            if now is not None and now != live:
                event("state", live=now)
                live = now
        if went_down and up and live and victim_id in live:
            break
        time.sleep(interval)
    event("end")


def main():
    mode, opts = sys.argv[1], args_of(sys.argv[2:])
    {"read": read, "chat": chat, "watch": watch}[mode](opts)


if __name__ == "__main__":
    main()
