"""Mutation testing of Vasari's decision code with mutmut 3 (``pip install -e '.[mutation]'``).

Why: issue #12 planted bugs (a transposed confusion matrix, the uncalibrated ECE reported,
selective accuracy over all rows) that every test let through. A mutation run plants such
bugs mechanically, one at a time, in the functions that decide what a user is told, and
lists the ones no test notices ("survivors"): each is a missing test or, after reading it,
an equivalent change (explained in ``scripts/MUTATION.md``).

Usage (from the repository root; not part of ``.ci/run``: minutes per target, see ``--estimate``)::

    python scripts/mutation.py                          # evaluate, thresholds, splits
    python scripts/mutation.py --targets predict service download
    python scripts/mutation.py --targets evaluate --max-children 1 --work /tmp/vm
    python scripts/mutation.py --targets predict --estimate   # mutants and minutes, runs nothing
    python scripts/mutation.py --targets service --quick 4    # every 4th mutant: a quarter of the time
    python scripts/mutation.py --targets train --mutants 'vasari.heads.calibration.x_choose_threshold__mutmut_57'

A target (``--targets``) is one module's decision functions with the fast tests that guard
them; ``predict`` names a group of targets (``GROUPS``).

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parent.parent
MUTATION_MD = ROOT / "scripts" / "MUTATION.md"


@dataclass(frozen=True)
class Target:
    """One area of decision code: a module, the functions to mutate, the tests that guard them."""

    module: str  # dotted, e.g. "vasari.heads.metrics"
    functions: tuple[str, ...]  # mutmut keys without the module: "x_func", "xǁClassǁmethod" (globs)
    tests: tuple[str, ...]
    #: pytest -k expression picking the tests of ``tests`` that matter: one for all files, or
    #: one per file stem (a file without an entry runs whole)
    keyword: str | Mapping[str, str] | None = None
    #: measured seconds per mutant on the shared 2-core machine under load (scripts/MUTATION.md),
    #: for ``--estimate``; None where not measured
    seconds_per_mutant: float | None = None

    def selection(self) -> list[str]:
        """pytest -k terms selecting this target's tests (a module name matches all its tests)."""
        terms = []
        for stem in (Path(t).stem for t in self.tests):
            keyword = self.keyword.get(stem) if isinstance(self.keyword, Mapping) else self.keyword
            terms.append(stem if keyword is None else f"({stem} and ({keyword}))")
        return terms

    @property
    def path(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def patterns(self) -> list[str]:
        """mutmut mutant-name globs (``<module>.<key>__mutmut_<n>``)."""
        return [f"{self.module}.{f}__mutmut_*" for f in self.functions]


#: The predictor's fast decision tests: hand-built heads on 2-d features (no backbone, no ONNX).
PREDICTOR_TESTS = "verdict or novelty_detector or default_names or top_k_is_checked"
#: Generated-feature tests of the gallery's novelty (not the shared-data one: 17 s a run).
GALLERY_NOVELTY_TESTS = "novelty and not artists7 or enrich_predictions or batch_enrichment or groups_are_left_out"

TARGETS: dict[str, Target] = {
    "evaluate": Target(
        "vasari.heads.metrics",
        ("x__confidence_bins", "x_calibration_error", "x_expected_calibration_error", "x_reliability", "x_headline", "x__task_metrics", "x_evaluate_heads"),
        ("tests/test_evaluate.py",),
        seconds_per_mutant=0.7,
    ),
    "train": Target(
        "vasari.heads.calibration",
        ("x_softmax", "x_nll", "x_fit_temperature", "x_choose_threshold", "x_coverage_curve"),
        ("tests/test_train.py", "tests/test_evaluate.py"),
        "threshold or temperature or calibration or abstention or softmax or nll or coverage or evaluate",
        seconds_per_mutant=0.7,
    ),
    "dataset": Target(
        "vasari.dataset.split",
        ("x__stratify_values", "x_split_grouped", "x_split_random"),
        ("tests/test_dataset.py",),
        "grouped_split or random_split or stratify_values",  # not build_dataset's image hashing
        seconds_per_mutant=0.7,
    ),
    # the verdict step: top-k, threshold, either detector's novelty (the glue around it is small)
    "predictor": Target(
        "vasari.inference.predictor", ("xǁPredictorǁpredictions_from_features", "xǁPredictorǁ_check_top_k"),
        ("tests/test_predict.py", "tests/test_decisions.py"), {"test_predict": PREDICTOR_TESTS}, seconds_per_mutant=0.5,
    ),
    # the one-answer rule: a novel picture makes no claims; style, year and artist agree
    "consistency": Target(
        "vasari.inference.consistency", ("x_withhold_claims", "x__top_k", "x__decode_dating", "x_make_consistent"),
        ("tests/test_trust_consistency.py", "tests/test_decisions.py"), seconds_per_mutant=0.5,
    ),
    "decode": Target(
        "vasari.heads.trust", ("x_period_window", "x_styles_meeting", "x_joint_decode", "x_artist_fits", "x_artist_spans"),
        ("tests/test_trust_consistency.py", "tests/test_trust.py", "tests/test_decisions.py"), seconds_per_mutant=0.5,
    ),
    "heads-novelty": Target(
        "vasari.heads.novelty", ("xǁNoveltyDetectorǁscore", "xǁNoveltyDetectorǁis_novel"),
        ("tests/test_predict.py", "tests/test_decisions.py"), {"test_predict": PREDICTOR_TESTS}, seconds_per_mutant=0.5,
    ),
    # not ``nearest_distance``: nothing in vasari calls it (calibration has its own copy)
    "gallery-novelty": Target(
        "vasari.gallery.novelty",
        ("xǁNoveltyMixinǁ_negative_sims", "xǁNoveltyMixinǁ_novelty_rows", "xǁNoveltyMixinǁnovelty",
         "xǁNoveltyMixinǁnovelty_many", "xǁNoveltyMixinǁis_novel"),
        ("tests/test_index.py", "tests/test_predict.py", "tests/test_decisions.py"),
        {"test_index": GALLERY_NOVELTY_TESTS, "test_predict": PREDICTOR_TESTS}, seconds_per_mutant=0.5,
    ),
    "enrich": Target("vasari.inference.enrich", ("x_enrich_predictions",), ("tests/test_index.py", "tests/test_predict.py")),
    # MicroBatcher by class glob (its methods change with the decode stage); its own fast
    # tests, whose waits are bounded by $VASARI_TEST_WAIT_S (set short here)
    "service": Target(
        "vasari.service.batching", ("xǁMicroBatcherǁ*", "x__truncate"), ("tests/test_service_batching.py",),
        seconds_per_mutant=2.4,
    ),
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
#: Names for several targets run together (one mutmut run, one stats collection).
GROUPS: dict[str, tuple[str, ...]] = {
    "predict": ("predictor", "consistency", "decode", "heads-novelty", "gallery-novelty"),
    "download-all": ("download", "download-files", "download-fetch"),
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
    #: mutmut stops a mutant after (estimated test time + constant) * multiplier seconds of
    #: wall time and counts it killed ("timeout"): a mutant that deadlocks a worker thread
    #: ends in seconds instead of mutmut's default (test time + 1) * 15
    timeout_multiplier: float = 3.0
    timeout_constant: float = 5.0
    #: ``$VASARI_TEST_WAIT_S`` for the tests: how long a test waits for a thread or a future
    #: before failing (their default is generous for a loaded machine; a mutant that never
    #: answers should fail fast)
    test_wait_s: float = 5.0
    #: run every n-th mutant of each target only (``--quick``); 1 runs them all
    every: int = 1


def expand_targets(names: list[str]) -> tuple[str, ...]:
    """Target names with groups replaced by their members, in order, without repeats."""
    return tuple(dict.fromkeys(member for name in names for member in GROUPS.get(name, (name,))))


def mutmut_section(targets: list[Target], config: MutationConfig) -> str:
    """The ``[tool.mutmut]`` TOML section for these targets."""
    files = sorted({t.path for t in targets})
    tests = sorted({f for t in targets for f in t.tests})
    keyword = " or ".join(dict.fromkeys(term for t in targets for term in t.selection()))
    return "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["vasari/"]',
        f"only_mutate = {json.dumps(files)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-k", {json.dumps(keyword)}]',
        "use_git_change_detection = false",
        f"timeout_multiplier = {config.timeout_multiplier}",
        f"timeout_constant = {config.timeout_constant}",
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
    (work / "pyproject.toml").write_text(pyproject + mutmut_section(targets, config))
    return work


def mutmut(work: Path, *args: str, capture: bool = False, test_wait_s: float = MutationConfig.test_wait_s
           ) -> subprocess.CompletedProcess:
    """Run ``mutmut`` in the work folder with a clean import path (no checkout on PYTHONPATH,
    one ONNX export shared by all its test sessions, short test waits)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VASARI_TEST_CACHE"] = str(work / "test-cache")
    env["VASARI_TEST_WAIT_S"] = str(test_wait_s)
    shared = ROOT.parent / "shared" / "data"
    if "VASARI_DATA" not in env and shared.is_dir():
        env["VASARI_DATA"] = str(shared)
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env, text=True,
                          capture_output=capture, check=False)


def mutant_names(work: Path, target: Target) -> list[str]:
    """The names mutmut gives this target's mutants, without running anything (its own
    generator on the work folder's copy of the module; used by ``--estimate`` and ``--quick``)."""
    code = (
        "import json, sys; from mutmut.mutation.file_mutation import mutate_file_contents; "
        "p = sys.argv[1]; print(json.dumps(sorted(mutate_file_contents(p, open(p).read()).mutant_names)))"
    )
    out = subprocess.run([sys.executable, "-c", code, target.path], cwd=work, text=True,
                         capture_output=True, check=True)
    prefix = target.module + "."
    names = [n if n.startswith(prefix) else prefix + n for n in json.loads(out.stdout)]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in target.patterns())]


def sample(names: list[str], every: int) -> list[str]:
    """Every ``every``-th mutant in mutmut's numbering (spread over all the functions)."""
    def number(name: str) -> tuple[str, int]:
        base, _, n = name.rpartition("__mutmut_")
        return base, int(n)

    return sorted(names, key=number)[::every]


def estimate(work: Path, names: list[str]) -> int:
    """Print each target's mutant count and expected minutes; returns 0."""
    print(f"{'target':<16} {'mutants':>7} {'s/mutant':>8} {'minutes':>7}")
    for name in names:
        target = TARGETS[name]
        count = len(mutant_names(work, target))
        rate = target.seconds_per_mutant
        minutes = "?" if rate is None else f"{count * rate / 60:.0f}"
        print(f"{name:<16} {count:>7} {rate or '?':>8} {minutes:>7}")
    print("(seconds per mutant as measured on the shared 2-core machine under load, scripts/MUTATION.md; "
          "add about 2 minutes per run for mutant generation, the stats run and the report)")
    return 0


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


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report(work: Path, config: MutationConfig, minutes: float, chosen: list[str] | None) -> dict:
    """Print every survivor's diff and a table per target; returns the summary. ``minutes``
    is the ``mutmut run`` (generation, stats run, mutants), not the report."""
    equivalent = equivalent_mutants()
    patterns = {name: TARGETS[name].patterns() for name in config.targets}
    found = statuses(work, [p for ps in patterns.values() for p in ps])
    if chosen is not None:
        found = {n: s for n, s in found.items() if n in chosen}
    per_target = {name: score({n: s for n, s in found.items() if any(fnmatch.fnmatchcase(n, p) for p in ps)}, equivalent)
                  for name, ps in patterns.items()}
    total = score(found, equivalent)
    for mutant in total["survivors"]:
        print(f"\n--- survived: {mutant}")
        mutmut(work, "show", mutant)
    print(f"\n{'target':<16} {'mutants':>7} {'ran':>5} {'killed':>6} {'equiv.':>6} {'survived':>8} "
          f"{'score':>6} {'non-equivalent':>14}")
    for name, r in per_target.items():
        print(f"{name:<16} {r['mutants']:>7} {r['ran']:>5} {r['killed']:>6} {len(r['equivalent']):>6} "
              f"{len(r['survivors']):>8} {_percent(r['score']):>6} {_percent(r['score_without_equivalent']):>14}")
    print(f"all: {total['killed']} of {total['ran']} killed, {len(total['equivalent'])} equivalent "
          f"(scripts/MUTATION.md), {len(total['survivors'])} survivors: "
          f"{_percent(total['score_without_equivalent'])} of the non-equivalent mutants; mutmut run {minutes:.1f} min")
    return {"targets": list(config.targets), "minutes": round(minutes, 1), "every": config.every,
            **total, "per_target": per_target}


def parse_args(argv: list[str] | None) -> tuple[MutationConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python scripts/mutation.py --targets predict --max-children 1")
    parser.add_argument("--targets", nargs="+", choices=sorted({*TARGETS, *GROUPS}), default=list(DEFAULT_TARGETS),
                        help="targets or groups (" + "; ".join(f"{g}: {' '.join(m)}" for g, m in GROUPS.items()) + ")")
    parser.add_argument("--work", type=Path, default=MutationConfig.work, help="scratch folder (default %(default)s)")
    parser.add_argument("--max-children", type=int, default=MutationConfig.max_children,
                        help="parallel test processes (default %(default)s; the machine may be shared)")
    parser.add_argument("--goal", type=float, default=MutationConfig.goal, help="minimum score (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results in --work")
    parser.add_argument("--mutants", nargs="+", default=None, metavar="NAME",
                        help="rerun only these mutants (names or globs), e.g. the survivors after adding tests")
    parser.add_argument("--quick", type=int, default=1, metavar="N",
                        help="run only every N-th mutant of each target (about 1/N of the time; a sample score)")
    parser.add_argument("--estimate", action="store_true",
                        help="print each target's mutant count and expected minutes, run nothing")
    parser.add_argument("--test-wait", type=float, default=MutationConfig.test_wait_s,
                        help="seconds a test waits for a thread or future before failing (default %(default)s)")
    args = parser.parse_args(argv)
    config = MutationConfig(expand_targets(args.targets), args.work, args.max_children, args.goal, args.fresh,
                            test_wait_s=args.test_wait, every=max(1, args.quick))
    return config, args


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    targets = [TARGETS[name] for name in config.targets]
    work = prepare_work_dir(config, targets)
    if args.estimate:
        return estimate(work, list(config.targets))
    chosen = None
    if config.every > 1:
        chosen = [n for t in targets for n in sample(mutant_names(work, t), config.every)]
    names = args.mutants or chosen or [p for t in targets for p in t.patterns()]
    started = time.monotonic()
    run = mutmut(work, "run", "--max-children", str(config.max_children), *names, test_wait_s=config.test_wait_s)
    minutes = (time.monotonic() - started) / 60
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode}); see the output above", file=sys.stderr)
        return 2
    summary = report(work, config, minutes, chosen)
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary: {work / 'summary.json'}")
    ok = summary["score_without_equivalent"] is not None and summary["score_without_equivalent"] >= config.goal
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
