# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every module that talks to libvirt shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI. The VM lab uses the system instance, where the host's bridges and
        the lab's networks live.
    type: str
    default: qemu:///system
"""
