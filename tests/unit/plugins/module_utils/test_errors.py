# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's two error classes, and that every module_utils error is one of them."""

from __future__ import annotations

import importlib
import inspect
import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError, ModuleFailure

MODULE_UTILS = pathlib.Path(__file__).resolve().parents[4] / "plugins" / "module_utils"


def _error_classes():
    for path in sorted(MODULE_UTILS.glob("*.py")):
        module = importlib.import_module(f"ansible_collections.aicluster.lab.plugins.module_utils.{path.stem}")
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
                    and value not in (InputError, ModuleFailure)):
                yield pytest.param(value, id=f"{path.stem}.{name}")


@pytest.mark.parametrize("cls", list(_error_classes()))
def test_every_error_of_module_utils_is_an_input_error_or_a_module_failure(cls):
    assert issubclass(cls, (InputError, ModuleFailure))


def test_an_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_a_module_failure_carries_the_message_and_the_result():
    failure = ModuleFailure("interface: 'x' is not an interface name", changed=False, before={})
    assert str(failure) == failure.msg == "interface: 'x' is not an interface name"
    assert failure.result == {"changed": False, "before": {}}
