"""The `nbn-tutorial` command line: data, train, evaluate, notebooks, study.

Every subcommand is a thin layer over a package function; user errors (`UserError`) print one
sentence and exit with status 2, never a traceback. Arguments must be UTF-8 text (file names and
reports are written as UTF-8), which is checked before anything runs.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import check_utf8_path
from nbn_tutorial.wording import plural

EXIT_USER_ERROR = 2


def _data_list(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import data

    print(data.format_dataset_list())


def _data_stats(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import data

    print(data.format_dataset_stats(args.name, root=args.data_root, imbalance_factor=args.imbalance_factor,
                                    profile=args.profile, seed=args.seed, list_dir=args.list_dir,
                                    class_order=args.class_order, max_per_class=args.max_per_class,
                                    shot_rule=args.shot_rule, val_per_class=args.val_per_class))


def _data_check(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import data

    result = data.check_dataset(args.name, root=args.data_root, list_dir=args.list_dir, workers=args.workers)
    print(data.format_check(result))
    if result.bad:
        raise UserError(f"{len(result.bad)} of {result.checked} images of {args.name} cannot be read (listed above); "
                        "replace them, or train with --set skip_bad_images=true to leave them out")


def _data_cache(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import data

    out = data.cache_dataset(args.name, args.out, root=args.data_root, list_dir=args.list_dir,
                             short_side=args.short_side, workers=args.workers)
    print(f"pre-resized cache: {out} (train with --data-root {args.out})")


def _train(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import train

    overrides = list(args.set or [])
    if args.data_root is not None:
        overrides.append(f"data_root={args.data_root}")
    if args.list_dir is not None:
        overrides.append(f"list_dir={args.list_dir}")
    config = train.load_config(args.config, overrides)
    out = args.out if args.out is not None else train.default_run_dir(config)
    run_dir = train.train(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"run directory: {run_dir}")


def _evaluate(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import train

    metrics = train.evaluate_checkpoint(args.checkpoint, split=args.split, device=args.device,
                                        data_root=args.data_root, list_dir=args.list_dir,
                                        skip_bad_images=args.skip_bad_images, tau_norm=args.tau_norm,
                                        tau_split=args.tau_split, allow_other_data=args.allow_other_data)
    print(train.format_metrics(metrics))
    if args.tau_norm is not None:
        print(f"τ-normalisation: {metrics['tau_note']}")
    skipped = metrics["skipped_images"]
    if skipped:
        print(f"note: {len(skipped)} unreadable image{'s were' if len(skipped) != 1 else ' was'} left out "
              f"(first: {skipped[0]})")
    if metrics["selected_on"] == "test":
        print(f"note: this checkpoint was {train.TEST_SPLIT_NOTE}")
    elif metrics["selected_on"] == "val":
        print("note: this checkpoint was selected on the val split")


class _ParameterSource(argparse.Action):
    """Collects --profile, -f and -p into ``args.sources`` in command-line order, so that a later one wins."""

    def __init__(self, option_strings: Sequence[str], dest: str, kind: str, **kwargs) -> None:
        super().__init__(option_strings, "sources", **kwargs)
        self.kind = kind

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.sources = [*(getattr(namespace, "sources", None) or []), (self.kind, values)]


def _sources(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The parameter sources of the command line, -p values parsed as YAML."""
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial.notebooks import profiles

    return [(kind, (value[0], profiles.parse_parameter_value(value[1])) if kind == "set" else value)
            for kind, value in args.sources or []]


def _add_parameter_options(parser: argparse.ArgumentParser, *, profile: bool) -> None:
    """--profile (when `profile`), -f FILE and -p NAME VALUE, applied in the order given."""
    if profile:
        parser.add_argument("--profile", action=_ParameterSource, kind="profile", metavar="NAME",
                            help="a profile in notebooks/params (default: quick unless -f is given)")
    parser.add_argument("-f", "--params-file", action=_ParameterSource, kind="file", metavar="FILE",
                        help="a YAML file of notebook parameters")
    order = "--profile, -f and -p" if profile else "-f and -p"
    parser.add_argument("-p", "--parameter", action=_ParameterSource, kind="set", nargs=2, metavar=("NAME", "VALUE"),
                        help=f"one parameter, VALUE parsed as YAML as papermill does (repeatable; {order} apply in "
                             "the order given, later wins)")
    parser.set_defaults(sources=[])


def _notebooks_run(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import notebooks

    only = args.only.split(",") if args.only else None
    out = notebooks.run_sequence(out_dir=args.out, only=only, sources=_sources(args), overwrite=args.overwrite,
                                 report=args.report)
    print(f"executed notebooks: {out}")
    if (out / "report.md").exists():
        print(f"report: {out / 'report.md'}")


def _notebooks_sweep(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import notebooks

    print(f"sweep summary: {notebooks.run_sweep(args.sweep, out_dir=args.out, sources=_sources(args))}")


def _notebooks_exercises(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import notebooks

    written = notebooks.write_student_notebooks(args.out, overwrite=args.overwrite)
    count = sum(len(notebooks.list_exercises(path)) for path in notebooks.discover_notebooks().values())
    print(f"student notebooks: {len(written)} in {args.out} ({count} exercises with their solutions replaced by "
          "`raise NotImplementedError()` and hidden tests removed)")


def _notebooks_report(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import notebooks

    print(f"report: {notebooks.build_report(args.dir)}")


def _notebooks_copy(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import workspace

    folder, written, kept = workspace.copy_workspace(args.dir)
    kept_text = f", kept {kept} identical" if kept else ""
    print(f"workspace: {folder} (wrote {plural(written, 'file')}{kept_text}); run `nbn-tutorial` and JupyterLab inside "
          "it to use its notebooks, profiles and presets")


def _study_run(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import provenance, study

    arms, datasets = (None if value is None else [name.strip() for name in value.split(",") if name.strip()]
                      for value in (args.arms, args.datasets))
    out = study.run_study(args.study, args.out, jobs=args.jobs, progress=not args.quiet,
                          command=provenance.command_line(), arms=arms, datasets=datasets)
    print(f"study runs: {out} (next: nbn-tutorial study report {out})")


def _study_report(args: argparse.Namespace) -> None:
    # deferred: the command's own subpackage (torch for most): `nbn-tutorial --help` stays fast
    from nbn_tutorial import provenance, study

    command = provenance.command_line()
    if study.is_results_folder(args.dir):
        if args.out is not None or args.update or args.allow_incomplete:
            raise UserError(f"{args.dir} holds committed results (results.csv, no study.json): it is rebuilt in "
                            "place, so leave --out, --update and --allow-incomplete out")
        if args.readme is not None:   # before anything is written: a bad --readme changes nothing
            study.check_readme(args.readme)
        summary = study.rebuild_study_report(args.dir, command=command, study_name=args.study)
    else:
        if args.readme is not None:
            study.check_readme(args.readme, study.load_plan(args.dir)["study"])
        summary = study.write_study_report(args.dir, args.out, command=command, update=args.update,
                                           allow_incomplete=args.allow_incomplete)
    print(f"study report: {summary}")
    if args.readme is not None:
        name = summary.read_text(encoding="utf-8").splitlines()[0].split("`")[1]
        source = None if study.is_results_folder(args.dir) else study.load_plan(args.dir).get("source")
        _, design = study.load_design(name, source)
        study.update_readme(args.readme, name, summary.parent, design)
        print(f"README table updated: {args.readme}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `nbn-tutorial`."""
    parser = argparse.ArgumentParser(prog="nbn-tutorial", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    root_option = argparse.ArgumentParser(add_help=False)
    root_option.add_argument("--data-root", default=None,
                             help="where datasets live (default: $NBN_DATA, else ./data)")

    data = commands.add_parser("data", help="list datasets and show long-tailed class counts")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_commands.add_parser("list", help="registered datasets").set_defaults(handler=_data_list)
    stats = data_commands.add_parser("stats", parents=[root_option], help="per-class counts and shot groups")
    stats.add_argument("name", help="dataset name (see `nbn-tutorial data list`)")
    stats.add_argument("--imbalance-factor", default=None, help="max/min class count (default: the dataset's)")
    stats.add_argument("--profile", default=None, help="exp or step (default: the dataset's)")
    stats.add_argument("--seed", type=int, default=0, help="seed of the long-tailed selection")
    stats.add_argument("--class-order", default="ldam",
                       help="which class gets which count: ldam (class i the i-th largest) or permuted (seeded)")
    stats.add_argument("--max-per-class", type=int, default=None,
                       help="size of the largest class (default: the dataset's; see the config key max_per_class)")
    stats.add_argument("--val-per-class", type=int, default=None,
                       help="held-out val images per class of an in-memory dataset (default: the dataset's; 0: none)")
    stats.add_argument("--list-dir", default=None, help="folder of the official list files (list datasets)")
    stats.add_argument("--shot-rule", default=None, help="many/medium/few rule: auto, absolute or rank "
                                                         "(default: the dataset's)")
    stats.set_defaults(handler=_data_stats)
    check = data_commands.add_parser("check", parents=[root_option],
                                     help="open every image of a file dataset once and list the unreadable ones")
    check.add_argument("name", help="a dataset of image files (kind `files` in `nbn-tutorial data list`)")
    check.add_argument("--list-dir", default=None, help="folder of the list files (list datasets)")
    check.add_argument("--workers", type=int, default=None, help="processes opening images (default: all cores)")
    check.set_defaults(handler=_data_check)
    cache = data_commands.add_parser("cache", parents=[root_option],
                                     help="pre-resize a list dataset's images (faster ImageNet-LT/iNat loading)")
    cache.add_argument("name", help="a dataset with official list files (`nbn-tutorial data list`)")
    cache.add_argument("--out", required=True, help="new data root that will hold the resized copy")
    cache.add_argument("--short-side", type=int, default=256, help="shorter image side after resizing")
    cache.add_argument("--list-dir", default=None, help="folder of the official list files")
    cache.add_argument("--workers", type=int, default=None, help="resizing processes (default: all cores)")
    cache.set_defaults(handler=_data_cache)

    train = commands.add_parser("train", parents=[root_option], help="train a model from a YAML config")
    train.add_argument("--config", required=True, help="YAML config, e.g. configs/quick_digits_bn.yaml")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    train.add_argument("--list-dir", default=None, help="folder of the list files (default: next to the images)")
    train.add_argument("--out", default=None, help="run directory (default: runs/<derived name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on its dataset's test split")
    evaluate.add_argument("--checkpoint", required=True, help="a best.pt or last.pt from a run directory")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda or auto")
    evaluate.add_argument("--data-root", default=None, help="where the data lives now (default: where the run "
                                                            "trained, else $NBN_DATA when that folder is gone)")
    evaluate.add_argument("--list-dir", default=None, help="folder of the list files now (default: the run's)")
    evaluate.add_argument("--skip-bad-images", action="store_true",
                          help="leave unreadable images out (and say how many) instead of stopping")
    evaluate.add_argument("--tau-norm", default=None, metavar="auto|TAU",
                          help="τ-normalise the classifier first: a τ, or auto to search τ in 0..2 by balanced "
                               "accuracy on the val split")
    evaluate.add_argument("--tau-split", default="val", choices=("val", "test"),
                          help="where --tau-norm auto searches τ: val (default) or test (optimistic, and said so)")
    evaluate.add_argument("--allow-other-data", action="store_true",
                          help="evaluate on data whose classes differ from the checkpoint's (a deliberate transfer; "
                               "label i is scored as the checkpoint's class i)")
    evaluate.set_defaults(handler=_evaluate)

    nb = commands.add_parser("notebooks", help="run the notebook sequence with papermill")
    nb_commands = nb.add_subparsers(dest="notebooks_command", required=True, metavar="ACTION")
    run = nb_commands.add_parser("run", help="execute the notebooks in order")
    _add_parameter_options(run, profile=True)
    run.add_argument("--out", default=None, help="output directory for executed notebooks and runs")
    run.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,03")
    run.add_argument("--report", action="store_true",
                     help="also write report.md, report.html and an HTML page of each executed notebook (a report "
                          "already in --out is always rewritten)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a sequence already in --out (needed when its parameters differ; its training runs "
                          "are kept for reuse)")
    run.set_defaults(handler=_notebooks_run)
    sweep = nb_commands.add_parser("sweep", help="run a grid of parameter sets, skipping finished ones")
    sweep.add_argument("sweep", help="sweep YAML (a base profile and a grid of parameters)")
    sweep.add_argument("--out", default=None, help="output directory of the sweep")
    _add_parameter_options(sweep, profile=False)
    sweep.set_defaults(handler=_notebooks_sweep)
    copy = nb_commands.add_parser("copy", help="copy the notebooks, profiles and presets into a folder you can edit")
    copy.add_argument("dir", help="the folder to create or complete (existing files are never overwritten)")
    copy.set_defaults(handler=_notebooks_copy)
    exercises = nb_commands.add_parser("exercises", help="write the student versions of the notebooks (course mode)")
    exercises.add_argument("--out", required=True, help="folder for the student notebooks")
    exercises.add_argument("--overwrite", action="store_true", help="replace student notebooks already in --out")
    exercises.set_defaults(handler=_notebooks_exercises)
    report = nb_commands.add_parser("report",
                                    help="write report.md, report.html and the notebook pages of an executed sequence")
    report.add_argument("dir", help="the output directory of `notebooks run`")
    report.set_defaults(handler=_notebooks_report)
    studies = commands.add_parser("study", help="run a seeded grid of training runs and report paired intervals")
    study_commands = studies.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    study_run = study_commands.add_parser("run", help="train every run of a study (resumable)")
    study_run.add_argument("study", help="a study YAML file or the name of one in studies/")
    study_run.add_argument("--out", required=True, help="folder of the study's run directories")
    study_run.add_argument("--jobs", type=int, default=1, help="training processes at once (default 1)")
    study_run.add_argument("--quiet", action="store_true", help="no progress lines")
    study_run.add_argument("--arms", default=None, metavar="ARM,ARM",
                           help="run only these arms' runs now (the others wait for a later call), e.g. bn,nbn")
    study_run.add_argument("--datasets", default=None, metavar="NAME,NAME",
                           help="run only the runs of these datasets of the study now")
    study_run.set_defaults(handler=_study_run)
    study_report = study_commands.add_parser("report", help="write results.csv, per_class.csv and summary.md")
    study_report.add_argument("dir", help="the --out folder of `study run`, or a results folder to rebuild from its "
                                          "committed tables (e.g. studies/results/nbn_ablation)")
    study_report.add_argument("--out", default=None, help="where to write the report (default: the study folder)")
    study_report.add_argument("--update", action="store_true",
                              help="keep the rows of the report already in --out for runs this folder does not hold")
    study_report.add_argument("--study", default=None, help="the study's name when a results folder's header lacks it")
    study_report.add_argument("--readme", default=None,
                              help="also rewrite this README's <!-- study:NAME:start/end --> table from the report")
    study_report.add_argument("--allow-incomplete", action="store_true",
                              help="report a study whose planned runs are not all measured (the summary says how "
                                   "many runs each figure rests on)")
    study_report.set_defaults(handler=_study_report)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """A UserError for an argument that is not UTF-8 text (it would be written into files and messages)."""
    values = [value for value in vars(args).values() if isinstance(value, str)]
    values += [item for _, value in getattr(args, "sources", None) or [] for item in
               (value if isinstance(value, (list, tuple)) else [value]) if isinstance(item, str)]
    values += [item for item in getattr(args, "set", None) or [] if isinstance(item, str)]
    for value in values:
        check_utf8_path(value, "the command-line argument")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        _check_arguments(args)
        handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
