"""Compare prediction objects computed along different float paths (another batch size, another
process or engine): the same labels, verdicts and ids, and numbers equal within a tolerance.

Scores are rounded to 4 decimals in the contract, so a batch of 5 against a batch of 12 may
move one of them by 1e-4 (0.2778 vs 0.2779); exact equality would test the CPU's float path."""

from __future__ import annotations

import math
from typing import Any


def assert_answers_close(got: Any, expected: Any, atol: float = 2e-3, where: str = "") -> None:
    """Recursive equality of JSON-like objects with ``atol`` on every float."""
    if isinstance(expected, float) or isinstance(got, float):
        assert isinstance(got, (int, float)) and isinstance(expected, (int, float)), where
        assert math.isclose(got, expected, rel_tol=0.0, abs_tol=atol), f"{where}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            assert_answers_close(got[key], expected[key], atol, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: lengths differ"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_answers_close(g, e, atol, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"
