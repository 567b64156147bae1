"""The fault tests' harness (fault_matrix.py) serves every unit test: its fixtures assets, emu, runner
and matrix are defined here once (a test module's own fixture of the same name wins)."""

from __future__ import annotations

import pytest

# Before the import: fault_matrix's asserts (in fixtures and helpers) get pytest's messages too.
pytest.register_assert_rewrite("tests.unit.fault_matrix")

from tests.unit.fault_matrix import assets, emu, matrix, runner  # noqa: E402, F401
