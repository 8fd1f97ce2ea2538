"""Training engine: the run config, training loop, checkpoints, exact resume, DDP, and evaluation.

A run is described by one :class:`Config` (YAML presets in ``configs/``, overrides ``key=value``) and
lives in a run directory, whose files :mod:`.run_dir` lists (:data:`~.run_dir.RUN_FILES`).

Accuracies are fractions in [0, 1]. ``epoch`` in a metrics row counts completed epochs (1 = after the
first), and ``lr`` is the learning rate used during that epoch.

Checkpoints hold only tensors and plain Python values, so ``torch.load(path, weights_only=True)`` reads
them; every random-number state is in them, so on CPU a resumed run reproduces an uninterrupted one
exactly. Under ``torchrun`` the engine uses DDP (gloo on CPU, NCCL on CUDA); only rank 0 writes files.

The modules, one concept each:

- :mod:`.config`: the :class:`Config` fields and their constants;
- :mod:`.coercion`: typing YAML and override values, legacy keys; :mod:`.config_io`: presets, files, overrides,
  the config a checkpoint holds;
- :mod:`.validation`: checking a config; :mod:`.schedule`: the learning rate per epoch;
- :mod:`.runtime`: device, torchrun processes, fast-path switches, seeding;
- :mod:`.builders`: datasets, model, loss, objective, optimizer from a config;
- :mod:`.checkpoints`: checkpoint files and random states; :mod:`.metric_files`: metrics.jsonl/csv;
- :mod:`.run_dir`: the run directory's name, checks, clearing and --overwrite staging;
- :mod:`.lock`: one writer per run directory (and per study or notebook output folder);
- :mod:`.identity`: the classes and training set a checkpoint records, checked by evaluation, stage 2, resume;
- :mod:`.guards`: exploding losses, non-finite models, skipped images, config notes;
- :mod:`.data_paths`: absolute data roots in run configs, relocating a checkpoint's data;
- :mod:`.trainer`: the training loop, :func:`train` and :func:`load_or_train`;
- :mod:`.progress`: what a training call shows people (widget bars in JupyterLab, text bars in a terminal,
  one compact output in executed notebooks);
- :mod:`.objective`: what one step computes (network and loss); :mod:`.dual_path`: Compound BN's dual path;
- :mod:`.selection`: which split chooses best.pt;
- :mod:`.trainable`: what trains (the ``trainable`` rules; frozen parts stay in eval mode);
- :mod:`.stage2`: decoupled stage 2 (``init_from``, ``reinit_classifier``); :mod:`.tau_norm`: post-hoc
  τ-normalisation with τ chosen on a val split (test, said so, without);
- :mod:`.evaluation`: evaluating models and checkpoints, loading a finished run; :mod:`.results`: a finished run's
  accuracies, runs gathered into one table; :mod:`.rebalancing`: stage-1 runs τ-normalised and re-balancing
  methods compared.
"""
from nbn_tutorial.paths import PRESET_DIR
from nbn_tutorial.train.builders import (build_datasets, build_loss_for, build_loss_for_counts, build_model_for,
                                         build_objective, build_optimizer, loss_options, parameter_groups)
from nbn_tutorial.train.checkpoints import (CHECKPOINT_FORMAT, changed_tensors, read_checkpoint, rng_states,
                                            set_rng_states)
from nbn_tutorial.train.coercion import LEGACY_KEYS
from nbn_tutorial.train.config import (AUTO, CHECKPOINT_METRICS, CONFIG_FIELDS, RUN_CONTROL_FIELDS, SELECTION_SPLITS,
                                       Config, config_to_dict, field_choices, field_help)
from nbn_tutorial.train.config_io import checkpoint_config, config_from_dict, list_presets, load_config, save_config
from nbn_tutorial.train.dual_path import DualPathModel, DualPathObjective, DualPathOptions, consistency_loss
from nbn_tutorial.train.evaluation import evaluate_checkpoint, evaluate_model, load_run, selected_on
from nbn_tutorial.train.metric_files import METRIC_COLUMNS, accuracy_metrics, format_metrics, read_metrics
from nbn_tutorial.train.objective import StandardObjective
from nbn_tutorial.train.rebalancing import (TauResult, rebalancing_summary, rebalancing_table, tau_curves,
                                            tau_normalize_run)
from nbn_tutorial.train.results import RUN_COLUMNS, epochs_done, final_metrics, gather_runs
from nbn_tutorial.train.run_dir import RUN_FILES, default_run_dir, protocol_differences, resolve_dataset_defaults
from nbn_tutorial.train.runtime import DistInfo, Runtime, dist_info_from_env, resolve_device, resolve_runtime
from nbn_tutorial.train.schedule import learning_rate
from nbn_tutorial.train.stage2 import STAGE2_FIELDS, prepare_stage2, stage2_config
from nbn_tutorial.train.trainable import TRAINABLE_REGISTRY, TRAINABLES, TrainableRule, register_trainable
from nbn_tutorial.train.tau_norm import TAU_GRID, TauSearch, search_tau, tau_table
from nbn_tutorial.train.selection import TEST_SPLIT_NOTE, VAL_COLUMNS, selection_split
from nbn_tutorial.train.trainer import NO_BAD_BATCH, load_or_train, train
from nbn_tutorial.train.validation import validate_config

__all__ = [
    # config
    "AUTO", "CHECKPOINT_METRICS", "CONFIG_FIELDS", "PRESET_DIR", "RUN_CONTROL_FIELDS", "SELECTION_SPLITS", "Config",
    "config_from_dict", "config_to_dict", "list_presets", "load_config", "save_config", "validate_config",
    "checkpoint_config", "field_choices", "field_help", "LEGACY_KEYS",
    "learning_rate",
    # runtime
    "DistInfo", "Runtime", "dist_info_from_env", "resolve_device", "resolve_runtime",
    # building and training
    "build_datasets", "build_loss_for", "build_model_for", "build_optimizer", "parameter_groups", "loss_options",
    "build_loss_for_counts",
    "NO_BAD_BATCH", "train", "load_or_train",
    # what a step computes (Compound BN's dual path)
    "StandardObjective", "build_objective", "DualPathModel", "DualPathObjective", "DualPathOptions",
    "consistency_loss",
    # decoupled stage 2 and τ-normalisation
    "TRAINABLE_REGISTRY", "TRAINABLES", "TrainableRule", "register_trainable", "prepare_stage2",
    "TAU_GRID", "TauSearch", "search_tau", "tau_table", "STAGE2_FIELDS", "stage2_config",
    "TauResult", "tau_normalize_run", "tau_curves", "rebalancing_table", "rebalancing_summary",
    # run directory, checkpoints, metrics
    "RUN_FILES", "default_run_dir", "protocol_differences", "resolve_dataset_defaults",
    "CHECKPOINT_FORMAT", "read_checkpoint", "rng_states", "set_rng_states", "changed_tensors",
    "METRIC_COLUMNS", "accuracy_metrics", "format_metrics", "read_metrics",
    # a run's final accuracies, runs gathered into one table
    "RUN_COLUMNS", "final_metrics", "epochs_done", "gather_runs",
    # evaluation
    "evaluate_checkpoint", "evaluate_model", "load_run", "selected_on",
    # checkpoint selection
    "TEST_SPLIT_NOTE", "VAL_COLUMNS", "selection_split",
]
