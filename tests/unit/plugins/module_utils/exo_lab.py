# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo lab captures (fixtures/exo: the role's reads of two converged lab nodes) and the
context the role passes its offline checks for them."""

import pathlib

from ansible_collections.aicluster.lab.plugins.module_utils import exo, exo_firewall

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "exo"
REF = "b5375f8cee4368d09e1ce96a56b9f81fb0bc81aa"


def lab_state(host="node1"):
    return exo.host_state((FIXTURES / f"lab-read-state-{host}.txt").read_text())


def lab_ctx(state, host="node1"):
    """What the role's validate.yml passes exo_checks on the lab (the role's defaults, bonding-vlans' plan)."""
    have = exo_firewall.live(state["nft"])
    return {
        "host": host, "unit": "exo.service", "firewall_unit": "aicluster-exo-firewall.service", "ref": REF,
        "user": "exo", "group": "exo", "workingdirectory": "/var/lib/exo",
        "exec_start": ["/opt/exo/exo/.venv/bin/exo", "--api-port", "52415", "--zenoh-port", "52414",
                       "--discovery-port", "52413", "--namespace", "aicluster-" + REF[:12], "--offline"],
        "files": [{"path": "/etc/systemd/system/exo.service", "content": (FIXTURES / f"lab-exo.service-{host}").read_text()}],
        "read_write_paths": ["/var/lib/exo", "/var/lib/exo/models"], "devices": False,
        "environment": {"HOME": "/var/lib/exo", "EXO_HOME": "/var/lib/exo", "EXO_DEFAULT_MODELS_DIR": "/var/lib/exo/models",
                        "EXO_OFFLINE": "true"},
        "firewall": {"interface": "bond0.200", "discovery_port": 52413, "zenoh_port": 52414, "api_port": 52415,
                     "peers_v6": have["sets"]["peers_v6"]["elements"], "peers_v4": have["sets"]["peers_v4"]["elements"],
                     "api_sources": ["192.168.200.0/24"], "note": ""},
        "cluster_interface": "bond0.200", "plan_interfaces": ["eth1", "eth2", "bond0", "bond0.200", "bond0.100"],
        "identity_file": "/etc/aicluster-lab/exo/node-identity", "artifact": None, "install_dir": "/opt/exo",
        "extra": "mlx-cpu", "backend_reason": "no GPU: CPU fallback: CPU (mlx-cpu)",
        "no_artifact_reason": "no EXO artifact given (exo_artifact_dir, or AICLUSTER_EXO_ARTIFACT)",
    }
