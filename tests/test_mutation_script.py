"""``scripts/mutation.py``'s own logic (no mutmut run): which targets, tests and mutants it
picks, and how it scores them, so that a score it prints can be trusted."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation_script", ROOT / "scripts" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_groups_expand_to_their_targets_once_in_order(mutation):
    assert mutation.expand_targets(["predict", "service", "decode"]) == (
        "predictor", "consistency", "decode", "heads-novelty", "gallery-novelty", "service")
    assert set(m for g in mutation.GROUPS.values() for m in g) <= set(mutation.TARGETS)


def test_every_target_names_an_existing_module_and_test_files(mutation):
    for name, target in mutation.TARGETS.items():
        assert (ROOT / target.path).is_file(), name
        assert all((ROOT / t).is_file() for t in target.tests), name


def test_the_mutmut_section_selects_each_files_tests_and_stops_hung_mutants(mutation):
    targets = [mutation.TARGETS["predictor"], mutation.TARGETS["service"]]
    section = tomllib.loads(mutation.mutmut_section(targets, mutation.MutationConfig()))["tool"]["mutmut"]
    assert section["only_mutate"] == ["vasari/inference/predictor.py", "vasari/service/batching.py"]
    assert section["pytest_add_cli_args_test_selection"] == [
        "tests/test_decisions.py", "tests/test_predict.py", "tests/test_service_batching.py"]
    keyword = section["pytest_add_cli_args"][section["pytest_add_cli_args"].index("-k") + 1]
    assert keyword == (f"(test_predict and ({mutation.PREDICTOR_TESTS})) or test_decisions or test_service_batching")
    assert (section["timeout_multiplier"], section["timeout_constant"]) == (3.0, 5.0)


def test_quick_takes_every_nth_mutant_in_numeric_order(mutation):
    names = [f"m.x_f__mutmut_{i}" for i in (10, 2, 1, 3, 11, 9)] + ["m.x_g__mutmut_1"]
    assert mutation.sample(names, 3) == ["m.x_f__mutmut_1", "m.x_f__mutmut_9", "m.x_g__mutmut_1"]
    assert mutation.sample(names, 1) == sorted(names, key=lambda n: (n.split("__mutmut_")[0], int(n.split("_")[-1])))


def test_score_leaves_out_unrun_and_equivalent_mutants_and_counts_timeouts_as_kills(mutation):
    found = {"a": "killed", "b": "timeout", "c": "survived", "d": "survived", "e": "not checked", "f": "killed"}
    result = mutation.score(found, equivalent={"d", "f"})
    assert (result["mutants"], result["ran"], result["killed"]) == (6, 5, 3)
    assert result["score"] == pytest.approx(3 / 5)
    assert result["equivalent"] == ["d"] and result["survivors"] == ["c"]
    assert result["score_without_equivalent"] == pytest.approx(2 / 3)  # a, b of a, b, c


def test_equivalent_mutants_are_read_from_mutation_md_without_the_listed_survivors(mutation):
    names = mutation.equivalent_mutants()
    assert "vasari.service.batching.xǁMicroBatcherǁ_loop__mutmut_21" in names
    assert "vasari.inference.consistency.x__top_k__mutmut_8" in names
    assert "vasari.service.batching.xǁMicroBatcherǁ_gather__mutmut_11" not in names  # a survivor, not equivalent
    assert "vasari.heads.trust.x_joint_decode__mutmut_17" not in names
