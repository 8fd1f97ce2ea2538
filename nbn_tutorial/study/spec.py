"""A study file: datasets × arms × seeds of training runs, read and checked before anything runs.

::

    description: what the study asks
    baseline: bn                       # the arm every other arm is compared with, seed by seed
    reference: nbn                     # optional: a second arm the others are also compared with
    pairs: [[nbn-crt, bn-crt]]         # optional: more paired comparisons, first arm minus second
    primary:                           # the confirmatory question(s): one family, Holm-adjusted together
      declared: before-results         # or after-results (said in every summary)
      why: one sentence on why these contrasts answer the study's question
      contrasts: [[nbn, bn, balanced]] # arm, against, metric; on every dataset that runs both arms
    seed_keys: [seed, data_seed]       # config keys that take the seed's value (default: [seed])
    arms:                              # name -> config overrides
      bn: {norm: bn}
      nbn: {norm: nbn}
    datasets:                          # name -> preset, seeds, optional overrides and arm subset
      digits-lt: {preset: quick_digits_bn, seeds: 10}
      fashion-mnist-lt: {preset: quick_fashion_bn, seeds: [0, 1, 2], arms: [bn, nbn], set: {epochs: 30}}

``seeds`` is a count (0..N-1) or a list. Every other paired contrast of a dataset (each arm against the
baseline and the reference, the ``pairs``) belongs to that dataset's exploratory family (see
:mod:`nbn_tutorial.study.contrasts`). Every run's config is built and validated when the study is
loaded, so a typo stops the study before its first run.

Arms may build on another arm's run of the same dataset and seed (decoupled stage 2, notebook 07):

- a string value may name that run's folder as ``{run:ARM}``, e.g. ``init_from: "{run:bn}/last.pt"``;
- ``{tau_norm_of: ARM}`` is a post-hoc arm: nothing is trained, its row measures ARM's run with its
  classifier τ-normalised (τ searched on the val split, else on the test split, and the row says which).

The arm built upon must be listed before the arm that uses it (the baseline always comes first); the
runner never starts a run before the runs it builds on are measured.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import read_yaml_mapping
from nbn_tutorial.registry import check_choice

STUDY_KEYS = ("description", "baseline", "reference", "pairs", "primary", "seed_keys", "arms", "datasets")
PRIMARY_KEYS = ("declared", "why", "contrasts")
DECLARED = ("before-results", "after-results")
CONTRAST_METRICS = ("balanced", "few", "many", "medium", "overall")
POSTHOC_KEY = "tau_norm_of"          # an arm measuring another arm's run τ-normalised (no training)
RUN_REFERENCE = re.compile(r"\{run:([^{}]+)\}")
DATASET_KEYS = ("preset", "seeds", "set", "arms")
ROW_FILE = "study_row.json"


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a study: where it lives and the config values it trains with."""

    dataset: str
    arm: str
    seed: int
    preset: str
    values: dict[str, Any]
    path: Path
    needs: tuple[Path, ...] = ()        # runs that must be measured first (the runs this one builds on)
    posthoc: dict[str, Any] | None = None   # {"source": run folder, "tau_norm": "auto"} for a post-hoc arm

    @property
    def label(self) -> str:
        """``dataset arm seed N``, for progress lines."""
        return f"{self.dataset} {self.arm} seed {self.seed}"


@dataclass(frozen=True)
class Study:
    """A loaded study file."""

    name: str
    source: Path
    description: str
    baseline: str
    reference: str | None
    seed_keys: tuple[str, ...]
    arms: dict[str, dict[str, Any]]
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: tuple[tuple[str, str], ...] = ()
    primary: tuple[tuple[str, str, str], ...] = ()    # (arm, against, metric)
    primary_declared: str = "before-results"
    primary_why: str = ""

    def arms_of(self, dataset: str) -> list[str]:
        """The arms run on ``dataset``, baseline first."""
        chosen = self.datasets[dataset].get("arms") or list(self.arms)
        return [self.baseline] + [arm for arm in chosen if arm != self.baseline]

    def seeds_of(self, dataset: str) -> list[int]:
        """The seeds run on ``dataset``."""
        seeds = self.datasets[dataset]["seeds"]
        return list(range(seeds)) if isinstance(seeds, int) else [int(seed) for seed in seeds]


def resolve_study_path(name_or_path: str | os.PathLike) -> Path:
    """A study YAML path, or the name of a study in ``studies/`` (with or without .yaml)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    named = paths.STUDY_DIR / (candidate.name if candidate.suffix in (".yaml", ".yml") else f"{candidate.name}.yaml")
    if candidate.parent == Path(".") and named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in paths.STUDY_DIR.glob("*.yaml"))) or "none"
    raise UserError(f"study file {str(name_or_path)!r} does not exist; give a YAML path or a study name ({known})")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise UserError(f"{what} must be a mapping of names to values, got {value!r}")
    return value


def _check_seeds(seeds: Any, where: str) -> None:
    valid_count = isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1
    valid_list = (isinstance(seeds, list) and seeds and len(set(seeds)) == len(seeds)
                  and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds))
    if not (valid_count or valid_list):
        raise UserError(f"seeds of {where} must be a count >= 1 or a list of distinct whole numbers >= 0, got {seeds!r}")


def _check_datasets(datasets: dict[str, Any], arms: dict[str, Any], source: Path) -> dict[str, dict[str, Any]]:
    checked = {}
    for name, entry in datasets.items():
        entry = _mapping(entry, f"dataset {name!r} in {source}")
        extra = sorted(set(entry) - set(DATASET_KEYS))
        if extra:
            raise UserError(f"dataset {name!r} in {source} has unknown key {extra[0]!r}; valid: {', '.join(DATASET_KEYS)}")
        if "preset" not in entry or "seeds" not in entry:
            raise UserError(f"dataset {name!r} in {source} needs a `preset` and `seeds`")
        _check_seeds(entry["seeds"], f"dataset {name!r}")
        for arm in entry.get("arms") or []:
            check_choice(f"arm of dataset {name!r}", arm, list(arms))
        checked[name] = {**entry, "set": _mapping(entry.get("set"), f"`set` of dataset {name!r}")}
    if not checked:
        raise UserError(f"study file {source} lists no datasets; add a `datasets` mapping")
    return checked


def load_study(name_or_path: str | os.PathLike) -> Study:
    """Read and check a study file (see the module docstring)."""
    source = resolve_study_path(name_or_path)
    content = read_yaml_mapping(source, "study file", allow_empty=False)
    extra = sorted(set(content) - set(STUDY_KEYS))
    if extra:
        raise UserError(f"study file {source} has unknown key {extra[0]!r}; valid: {', '.join(STUDY_KEYS)}")
    arms = {name: _mapping(values, f"arm {name!r} in {source}") for name, values in
            _mapping(content.get("arms"), f"`arms` in {source}").items()}
    if not arms:
        raise UserError(f"study file {source} lists no arms; add an `arms` mapping such as bn: {{norm: bn}}")
    baseline = content.get("baseline", next(iter(arms)))
    check_choice("baseline arm", baseline, list(arms))
    reference = content.get("reference")
    if reference is not None:
        check_choice("reference arm", reference, list(arms))
    seed_keys = tuple(content.get("seed_keys") or ("seed",))
    for key in seed_keys:
        check_choice("seed key", key, ("seed", "data_seed"))
    datasets = _check_datasets(_mapping(content.get("datasets"), f"`datasets` in {source}"), arms, source)
    primary = _mapping(content.get("primary"), f"`primary` in {source}")
    return Study(source.stem, source, str(content.get("description", "")).strip(), baseline, reference, seed_keys, arms,
                 datasets, _check_pairs(content.get("pairs"), arms, source), *_check_primary(primary, arms, source))


def _check_primary(primary: dict[str, Any], arms: dict[str, Any],
                   source: Path) -> tuple[tuple[tuple[str, str, str], ...], str, str]:
    """(contrasts, declared, why) of a study file's ``primary`` mapping (empty when the file has none)."""
    if not primary:
        return (), "before-results", ""
    extra = sorted(set(primary) - set(PRIMARY_KEYS))
    if extra:
        raise UserError(f"`primary` in {source} has unknown key {extra[0]!r}; valid: {', '.join(PRIMARY_KEYS)}")
    declared = primary.get("declared", "before-results")
    check_choice("`primary: declared`", declared, DECLARED)
    contrasts = primary.get("contrasts")
    if not isinstance(contrasts, list) or not contrasts or not all(
            isinstance(item, list) and len(item) == 3 for item in contrasts):
        raise UserError(f"`primary: contrasts` in {source} must list [arm, against, metric] triples such as "
                        f"[[nbn, bn, balanced]], got {contrasts!r}")
    for arm, against, metric in contrasts:
        check_choice("arm of a primary contrast", arm, list(arms))
        check_choice("arm of a primary contrast", against, list(arms))
        check_choice("metric of a primary contrast", metric, CONTRAST_METRICS)
    return (tuple((a, b, m) for a, b, m in contrasts), declared, " ".join(str(primary.get("why", "")).split()))


def _check_pairs(pairs: Any, arms: dict[str, Any], source: Path) -> tuple[tuple[str, str], ...]:
    """The ``pairs`` of a study file: a list of [arm, arm] (first minus second), each arm one of ``arms``."""
    if pairs is None:
        return ()
    if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise UserError(f"`pairs` in {source} must be a list of two-arm lists such as [[nbn-crt, bn-crt]], got {pairs!r}")
    for first, second in pairs:
        check_choice("arm of a pair", first, list(arms))
        check_choice("arm of a pair", second, list(arms))
    return tuple((first, second) for first, second in pairs)


def plan_study(study: Study, out_dir: str | os.PathLike) -> list[PlannedRun]:
    """Every run of the study, dataset by dataset, seed-major (all arms of seed 0 first), configs validated."""
    from nbn_tutorial import train   # deferred: torch-free: this subpackage reads committed results without torch

    out = Path(out_dir)
    plan = []
    for dataset, entry in study.datasets.items():
        for seed in study.seeds_of(dataset):
            planned: dict[str, PlannedRun] = {}
            for arm in study.arms_of(dataset):
                path = out / dataset / arm / f"seed{seed}"
                overrides = study.arms[arm]
                if POSTHOC_KEY in overrides:
                    source = _earlier_run(planned, overrides[POSTHOC_KEY], arm, dataset)
                    run = PlannedRun(dataset, arm, seed, source.preset, source.values, path, (source.path,),
                                     {"source": str(source.path), "tau_norm": "auto"})
                else:
                    overrides, needs = _resolve_run_references(overrides, planned, arm, dataset)
                    values = {"dataset": dataset, **entry["set"], **overrides, **{key: seed for key in study.seed_keys}}
                    config = train.config_from_dict({**train.config_to_dict(train.load_config(entry["preset"])),
                                                     **values}, f"study {study.name}: {dataset} {arm} seed {seed}")
                    run = PlannedRun(dataset, arm, seed, entry["preset"], train.config_to_dict(config), path, needs)
                planned[arm] = run
                plan.append(run)
    return plan


def _earlier_run(planned: dict[str, PlannedRun], source: Any, arm: str, dataset: str) -> PlannedRun:
    """The planned run of arm ``source`` (same dataset and seed), which must come before ``arm`` and be trained."""
    if source not in planned or planned[source].posthoc is not None:
        raise UserError(f"arm {arm!r} builds on arm {source!r}, which must be a training arm of {dataset} listed "
                        f"before it (arms run in order: the baseline, then as listed)")
    return planned[source]


def _resolve_run_references(overrides: dict[str, Any], planned: dict[str, PlannedRun], arm: str,
                            dataset: str) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """``overrides`` with every ``{run:ARM}`` replaced by that arm's run folder, and the runs referenced."""
    needs: list[Path] = []

    def replace(match: re.Match) -> str:
        source = _earlier_run(planned, match.group(1), arm, dataset)
        needs.append(source.path)
        return str(source.path.resolve())

    resolved = {key: RUN_REFERENCE.sub(replace, value) if isinstance(value, str) else value
                for key, value in overrides.items()}
    return resolved, tuple(dict.fromkeys(needs))
