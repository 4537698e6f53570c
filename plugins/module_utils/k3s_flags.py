# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flags of the pinned k3s release, as data: what /etc/rancher/k3s/config.yaml may hold.

k3s reads config.yaml as its command line: each key is a flag's long name. An unknown
key is only logged ("Unknown flag ... found in config.yaml, skipping") and the server
runs without it, so a typo silently drops a setting. k3s_config checks every rendered
config against this table before anything is written.

Where the facts come from (names and types only; nothing of k3s's code or text):
repository k3s-io/k3s, files pkg/cli/cmds/server.go (the server's flag list),
pkg/cli/cmds/agent.go (the agent's, and the node flags the server shares),
pkg/cli/cmds/log.go and pkg/cli/cmds/config.go (logging and --config, on both), read
in the public source index. The version pinned is v1.31.0+k3s1: the files read carry
the flags that release added (etcd-s3-proxy and etcd-s3-config-secret, k3s PR #10340;
supervisor-metrics in standalone mode, #10576; K3S_DATA_DIR, #10591) and not
nonroot-devices (#11200, released in v1.31.3+k3s1), per k3s's v1.31.X release notes.
The tag itself could not be checked out here (the repository's snapshot is over this
machine's fetch limit): tests/unit/test_k3s_flags_source.py checks this table against
a k3s tree or `k3s server --help` output whenever one is given.

Types are urfave/cli's flag kinds: ``string``, ``bool`` (BoolFlag and BoolTFlag),
``int``, ``duration`` (a Go duration such as ``5m0s``) and ``slice`` (StringSliceFlag:
repeatable on the command line, a string or a list of strings in config.yaml).
"""

from __future__ import annotations

K3S_VERSION = "v1.31.0+k3s1"

STRING, BOOL, INT, DURATION, SLICE = "string", "bool", "int", "duration", "slice"
TYPES = (STRING, BOOL, INT, DURATION, SLICE)

# Which command accepts a flag: "server" (k3s server only), "agent" (k3s agent only)
# or "both". A server also runs an agent, so most node flags are "both".
SERVER, AGENT, BOTH = "server", "agent", "both"

# name: (type, accepted by, short alias or None, hidden from --help)
FLAGS = {
    # logging and config: shared by both commands (log.go, config.go, root.go)
    "config": (STRING, BOTH, "c", False),
    "debug": (BOOL, BOTH, None, False),
    "v": (INT, BOTH, None, False),
    "vmodule": (STRING, BOTH, None, False),
    "log": (STRING, BOTH, "l", False),
    "alsologtostderr": (BOOL, BOTH, None, False),
    # cluster membership
    "token": (STRING, BOTH, "t", False),
    "token-file": (STRING, BOTH, None, False),
    "server": (STRING, BOTH, "s", False),
    "data-dir": (STRING, BOTH, "d", False),
    "agent-token": (STRING, SERVER, None, False),
    "agent-token-file": (STRING, SERVER, None, False),
    "cluster-init": (BOOL, SERVER, None, False),
    "cluster-reset": (BOOL, SERVER, None, False),
    "cluster-reset-restore-path": (STRING, SERVER, None, False),
    # listener
    "bind-address": (STRING, BOTH, None, False),
    "https-listen-port": (INT, SERVER, None, False),
    "advertise-address": (STRING, SERVER, None, False),
    "advertise-port": (INT, SERVER, None, False),
    "tls-san": (SLICE, SERVER, None, False),
    "tls-san-security": (BOOL, SERVER, None, False),
    # cluster networking
    "cluster-cidr": (SLICE, SERVER, None, False),
    "service-cidr": (SLICE, SERVER, None, False),
    "service-node-port-range": (STRING, SERVER, None, False),
    "cluster-dns": (SLICE, SERVER, None, False),
    "cluster-domain": (STRING, SERVER, None, False),
    "flannel-backend": (STRING, SERVER, None, False),
    "flannel-ipv6-masq": (BOOL, SERVER, None, False),
    "flannel-external-ip": (BOOL, SERVER, None, False),
    "egress-selector-mode": (STRING, SERVER, None, False),
    "servicelb-namespace": (STRING, SERVER, None, False),
    # client
    "write-kubeconfig": (STRING, SERVER, "o", False),
    "write-kubeconfig-mode": (STRING, SERVER, None, False),
    "write-kubeconfig-group": (STRING, SERVER, None, False),
    "helm-job-image": (STRING, SERVER, None, False),
    # extra arguments of the Kubernetes processes
    "kube-apiserver-arg": (SLICE, SERVER, None, False),
    "etcd-arg": (SLICE, SERVER, None, False),
    "kube-controller-manager-arg": (SLICE, SERVER, None, False),
    "kube-scheduler-arg": (SLICE, SERVER, None, False),
    "kube-cloud-controller-manager-arg": (SLICE, SERVER, None, False),
    "kube-controller-arg": (SLICE, SERVER, None, True),
    "kube-cloud-controller-arg": (SLICE, SERVER, None, True),
    "kubelet-arg": (SLICE, BOTH, None, False),
    "kube-proxy-arg": (SLICE, BOTH, None, False),
    # datastore and etcd snapshots
    "kine-tls": (BOOL, SERVER, None, True),
    "datastore-endpoint": (STRING, SERVER, None, False),
    "datastore-cafile": (STRING, SERVER, None, False),
    "datastore-certfile": (STRING, SERVER, None, False),
    "datastore-keyfile": (STRING, SERVER, None, False),
    "etcd-expose-metrics": (BOOL, SERVER, None, False),
    "etcd-disable-snapshots": (BOOL, SERVER, None, False),
    "etcd-snapshot-name": (STRING, SERVER, None, False),
    "etcd-snapshot-schedule-cron": (STRING, SERVER, None, False),
    "etcd-snapshot-retention": (INT, SERVER, None, False),
    "etcd-snapshot-dir": (STRING, SERVER, None, False),
    "etcd-snapshot-compress": (BOOL, SERVER, None, False),
    "etcd-s3": (BOOL, SERVER, None, False),
    "etcd-s3-endpoint": (STRING, SERVER, None, False),
    "etcd-s3-endpoint-ca": (STRING, SERVER, None, False),
    "etcd-s3-skip-ssl-verify": (BOOL, SERVER, None, False),
    "etcd-s3-access-key": (STRING, SERVER, None, False),
    "etcd-s3-secret-key": (STRING, SERVER, None, False),
    "etcd-s3-bucket": (STRING, SERVER, None, False),
    "etcd-s3-region": (STRING, SERVER, None, False),
    "etcd-s3-folder": (STRING, SERVER, None, False),
    "etcd-s3-proxy": (STRING, SERVER, None, False),
    "etcd-s3-config-secret": (STRING, SERVER, None, False),
    "etcd-s3-insecure": (BOOL, SERVER, None, False),
    "etcd-s3-timeout": (DURATION, SERVER, None, False),
    # storage and packaged components
    "default-local-storage-path": (STRING, SERVER, None, False),
    "disable": (SLICE, SERVER, None, False),
    "disable-scheduler": (BOOL, SERVER, None, False),
    "disable-cloud-controller": (BOOL, SERVER, None, False),
    "disable-kube-proxy": (BOOL, SERVER, None, False),
    "disable-network-policy": (BOOL, SERVER, None, False),
    "disable-helm-controller": (BOOL, SERVER, None, False),
    "disable-apiserver": (BOOL, SERVER, None, True),
    "disable-controller-manager": (BOOL, SERVER, None, True),
    "disable-etcd": (BOOL, SERVER, None, True),
    "disable-agent": (BOOL, SERVER, None, True),
    "embedded-registry": (BOOL, SERVER, None, False),
    "supervisor-metrics": (BOOL, SERVER, None, False),
    "secrets-encryption": (BOOL, SERVER, None, False),
    "system-default-registry": (STRING, SERVER, None, False),
    # the node (agent flags, which a server takes too)
    "node-name": (STRING, BOTH, None, False),
    "with-node-id": (BOOL, BOTH, None, False),
    "node-label": (SLICE, BOTH, None, False),
    "node-taint": (SLICE, BOTH, None, False),
    "image-credential-provider-bin-dir": (STRING, BOTH, None, False),
    "image-credential-provider-config": (STRING, BOTH, None, False),
    "protect-kernel-defaults": (BOOL, BOTH, None, False),
    "selinux": (BOOL, BOTH, None, False),
    "lb-server-port": (INT, BOTH, None, False),
    # the node's container runtime
    "docker": (BOOL, BOTH, None, False),
    "container-runtime-endpoint": (STRING, BOTH, None, False),
    "default-runtime": (STRING, BOTH, None, False),
    "image-service-endpoint": (STRING, BOTH, None, False),
    "disable-default-registry-endpoint": (BOOL, BOTH, None, False),
    "pause-image": (STRING, BOTH, None, False),
    "snapshotter": (STRING, BOTH, None, False),
    "private-registry": (STRING, BOTH, None, False),
    "airgap-extra-registry": (SLICE, BOTH, None, True),
    # the node's networking
    "node-ip": (SLICE, BOTH, "i", False),
    "node-external-ip": (SLICE, BOTH, None, False),
    "node-internal-dns": (SLICE, BOTH, None, False),
    "node-external-dns": (SLICE, BOTH, None, False),
    "resolv-conf": (STRING, BOTH, None, False),
    "flannel-iface": (STRING, BOTH, None, False),
    "flannel-conf": (STRING, BOTH, None, False),
    "flannel-cni-conf": (STRING, BOTH, None, False),
    "vpn-auth": (STRING, BOTH, None, False),
    "vpn-auth-file": (STRING, BOTH, None, False),
    # experimental
    "enable-pprof": (BOOL, BOTH, None, False),
    "rootless": (BOOL, BOTH, None, False),
    "prefer-bundled-bin": (BOOL, BOTH, None, False),
    "disable-apiserver-lb": (BOOL, AGENT, None, False),
}

# Values every server must share (k3s's documentation, "Critical Configuration Values"
# of k3s server): a server that differs fails to join embedded etcd, or the cluster
# runs inconsistently on an external datastore. datastore-endpoint is added: servers
# on different datastores are different clusters.
MUST_AGREE = (
    "agent-token", "cluster-cidr", "cluster-dns", "cluster-domain", "datastore-endpoint",
    "disable-cloud-controller", "disable-helm-controller", "disable-network-policy", "disable",
    "egress-selector-mode", "flannel-backend", "flannel-external-ip", "flannel-ipv6-masq",
    "secrets-encryption", "service-cidr",
)


def flag_type(name):
    return FLAGS[name][0]


def accepted_by(name, role):
    """Whether ``role`` ("server" or "agent") takes the flag ``name``."""
    return FLAGS[name][1] in (BOTH, role)


def names(role=None, hidden=True):
    """The long names, of one role's flags when ``role`` is given, sorted."""
    return sorted(name for name, (unused, who, unused_alias, is_hidden) in FLAGS.items()
                  if (role is None or who in (BOTH, role)) and (hidden or not is_hidden))
