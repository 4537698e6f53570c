# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's two error classes; each module_utils names its own subclass for its callers.

* ``InputError``: a value that cannot be used (a role's or a module's input, a tool's output).
  The message names the field and the value.
* ``ModuleFailure``: a refused option or a failed change of a module that acts on a host; it
  carries ``msg`` and the ``result`` the module fails with.
"""

from __future__ import annotations


class InputError(ValueError):
    """A value that cannot be used; the message names the field and the value."""


class ModuleFailure(Exception):
    """A refused option or a failed change; ``msg`` and ``result`` go into the module's failure."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result
