"""Mutation testing of Vasari's decision code with mutmut 3 (``pip install -e '.[mutation]'``).

Why: issue #12 planted bugs (a transposed confusion matrix, the uncalibrated ECE reported,
selective accuracy over all rows) that every test let through. A mutation run plants such
bugs mechanically, one at a time, in the functions that decide what a user is told, and
lists the ones no test notices ("survivors"): each is a missing test or, after reading it,
an equivalent change (explained in ``scripts/MUTATION.md``).

Usage (from the repository root; not part of ``.ci/run``: it takes tens of minutes)::

    python scripts/mutation.py                          # evaluate, thresholds, splits
    python scripts/mutation.py --targets predict service download
    python scripts/mutation.py --targets evaluate --max-children 1 --work /tmp/vm
    python scripts/mutation.py --mutants 'vasari.heads.train.x_choose_threshold__mutmut_57'   # rerun one

The run happens in a scratch copy (``--work``, default ``/tmp/vasari-mutation``) holding
``vasari/``, ``tests/`` and a ``pyproject.toml`` with a generated ``[tool.mutmut]`` section,
so the checkout is never touched. Only the named functions are mutated, and mutmut runs
only the tests that call the mutated function. Prints the score and every survivor's diff;
writes ``summary.json`` in the work folder. Exit status 0 when the score (equivalent
mutants listed in MUTATION.md left out) reaches ``--goal``, 1 below it.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATION_MD = ROOT / "scripts" / "MUTATION.md"


@dataclass(frozen=True)
class Target:
    """One area of decision code: a module, the functions to mutate, the tests that guard them."""

    module: str  # dotted, e.g. "vasari.heads.metrics"
    functions: tuple[str, ...]  # mutmut keys without the module: "x_func", "xǁClassǁmethod" (globs)
    tests: tuple[str, ...]
    keyword: str | None = None  # pytest -k expression picking the tests of ``tests`` that matter

    def selection(self) -> list[str]:
        """pytest -k terms selecting this target's tests (a module name matches all its tests)."""
        stems = [Path(t).stem for t in self.tests]
        return stems if self.keyword is None else [f"({stem} and ({self.keyword}))" for stem in stems]

    @property
    def path(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def patterns(self) -> list[str]:
        """mutmut mutant-name globs (``<module>.<key>__mutmut_<n>``)."""
        return [f"{self.module}.{f}__mutmut_*" for f in self.functions]


TARGETS: dict[str, Target] = {
    "evaluate": Target(
        "vasari.heads.metrics",
        ("x_expected_calibration_error", "x_reliability", "x_headline", "x__task_metrics", "x_evaluate_heads"),
        ("tests/test_evaluate.py",),
    ),
    "train": Target(
        "vasari.heads.calibration",
        ("x_softmax", "x_nll", "x_fit_temperature", "x_choose_threshold", "x_coverage_curve"),
        ("tests/test_train.py", "tests/test_evaluate.py"),
        "threshold or temperature or calibration or abstention or softmax or nll or coverage or evaluate",
    ),
    "dataset": Target(
        "vasari.dataset.split",
        ("x__stratify_values", "x_split_grouped", "x_split_random"),
        ("tests/test_dataset.py",),
        "grouped_split or random_split or stratify_values",  # not build_dataset's image hashing
    ),
    "predict": Target(
        "vasari.inference.predictor", ("xǁPredictorǁpredictions_from_features", "xǁPredictorǁ_check_top_k"),
        ("tests/test_predict.py",),
    ),
    "enrich": Target("vasari.inference.enrich", ("x_enrich_predictions",), ("tests/test_index.py", "tests/test_predict.py")),
    "gallery-novelty": Target("vasari.gallery.novelty", ("xǁNoveltyMixinǁ*",), ("tests/test_index.py",)),
    "service": Target("vasari.service.batching", ("xǁMicroBatcherǁ*",), ("tests/test_service.py",)),
    "download": Target(
        "vasari.download.manifest",
        ("x__load_manifest", "x_read_download_manifest", "x_failed_jobs", "x_remove_stale_temps"),
        ("tests/test_download.py",),
    ),
    "download-files": Target("vasari.download.files", ("x_finish_temp", "x_adopt_existing"), ("tests/test_download.py",)),
    "download-fetch": Target(
        "vasari.download.fetch", ("x_backoff_delay", "x_parse_retry_after", "x__retryable_status"), ("tests/test_download.py",)
    ),
}
DEFAULT_TARGETS = ("evaluate", "train", "dataset")
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"not checked", "skipped", "check was interrupted by user"}


@dataclass
class MutationConfig:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    work: Path = Path("/tmp/vasari-mutation")
    max_children: int = 2
    goal: float = 0.85
    fresh: bool = False


def mutmut_section(targets: list[Target]) -> str:
    """The ``[tool.mutmut]`` TOML section for these targets."""
    files = sorted({t.path for t in targets})
    tests = sorted({f for t in targets for f in t.tests})
    keyword = " or ".join(dict.fromkeys(term for t in targets for term in t.selection()))
    return "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["vasari/"]',
        f"only_mutate = {json.dumps(files)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-k", {json.dumps(keyword)}]',
        "use_git_change_detection = false",
        "",
    ])


def prepare_work_dir(config: MutationConfig, targets: list[Target]) -> Path:
    """A scratch copy of the code and tests with the mutmut configuration (kept between runs
    so that mutmut can reuse its results when neither code nor tests changed)."""
    work = config.work
    if config.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("vasari", "tests"):
        dest = work / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(ROOT / name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(pyproject + mutmut_section(targets))
    return work


def mutmut(work: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``mutmut`` in the work folder with a clean import path (no checkout on PYTHONPATH,
    one ONNX export shared by all its test sessions)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VASARI_TEST_CACHE"] = str(work / "test-cache")
    shared = ROOT.parent / "shared" / "data"
    if "VASARI_DATA" not in env and shared.is_dir():
        env["VASARI_DATA"] = str(shared)
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env, text=True,
                          capture_output=capture, check=False)


def equivalent_mutants() -> set[str]:
    """Mutant names explained as equivalent in MUTATION.md (lines ``- `name`: why``)."""
    if not MUTATION_MD.is_file():
        return set()
    return set(re.findall(r"^- `([\w.ǁ]+__mutmut_\d+)`", MUTATION_MD.read_text(), flags=re.M))


def statuses(work: Path, patterns: list[str]) -> dict[str, str]:
    """``{mutant name: status}`` of the mutants matching ``patterns`` (from ``mutmut results``)."""
    out = mutmut(work, "results", "--all", "true", capture=True)
    found = {}
    for line in out.stdout.splitlines():
        name, _, status = line.strip().partition(": ")
        if name and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            found[name] = status.strip()
    return found


def score(found: dict[str, str], equivalent: set[str]) -> dict:
    """Killed share of the mutants that ran, with and without the equivalent ones."""
    ran = {n: s for n, s in found.items() if s not in NOT_RUN}
    killed = [n for n, s in ran.items() if s in KILLED]
    survivors = sorted(n for n, s in ran.items() if s not in KILLED)
    real = [n for n in ran if n not in equivalent]
    real_killed = [n for n in killed if n not in equivalent]
    return {
        "mutants": len(found), "ran": len(ran), "killed": len(killed),
        "score": len(killed) / len(ran) if ran else None,
        "equivalent": sorted(n for n in survivors if n in equivalent),
        "score_without_equivalent": len(real_killed) / len(real) if real else None,
        "survivors": [n for n in survivors if n not in equivalent],
        "statuses": {s: sum(1 for v in found.values() if v == s) for s in sorted(set(found.values()))},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python scripts/mutation.py --targets evaluate train")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(DEFAULT_TARGETS))
    parser.add_argument("--work", type=Path, default=MutationConfig.work, help="scratch folder (default %(default)s)")
    parser.add_argument("--max-children", type=int, default=MutationConfig.max_children,
                        help="parallel test processes (default %(default)s; the machine may be shared)")
    parser.add_argument("--goal", type=float, default=MutationConfig.goal, help="minimum score (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results in --work")
    parser.add_argument("--mutants", nargs="+", default=None, metavar="NAME",
                        help="rerun only these mutants (names or globs), e.g. the survivors after adding tests")
    args = parser.parse_args(argv)
    config = MutationConfig(tuple(args.targets), args.work, args.max_children, args.goal, args.fresh)
    targets = [TARGETS[name] for name in config.targets]
    work = prepare_work_dir(config, targets)
    patterns = [p for t in targets for p in t.patterns()]
    run = mutmut(work, "run", "--max-children", str(config.max_children), *(args.mutants or patterns))
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode}); see the output above", file=sys.stderr)
        return 2
    result = score(statuses(work, patterns), equivalent_mutants())
    for name in result["survivors"]:
        print(f"\n--- survived: {name}")
        mutmut(work, "show", name)
    print(f"\n{result['killed']} of {result['ran']} mutants killed ({result['mutants']} generated): "
          f"score {result['score']:.1%}" if result["ran"] else "\nno mutant ran")
    if result["score_without_equivalent"] is not None:
        print(f"without the {len(result['equivalent'])} equivalent ones (scripts/MUTATION.md): "
              f"{result['score_without_equivalent']:.1%}; {len(result['survivors'])} survivors to kill")
    (work / "summary.json").write_text(json.dumps({"targets": list(config.targets), **result}, indent=2) + "\n")
    print(f"summary: {work / 'summary.json'}")
    ok = result["score_without_equivalent"] is not None and result["score_without_equivalent"] >= config.goal
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
