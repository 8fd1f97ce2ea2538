"""The run config: every field of a training run with its default, help text and valid words.

A :class:`Config` is plain data, composed of the typed options of the components it configures (the norms'
:mod:`~nbn_tutorial.nn.options`, RIDE's :class:`~nbn_tutorial.models.RIDEOptions`, the dual path's
:class:`~nbn_tutorial.train.dual_path.DualPathOptions`, the losses' :class:`~nbn_tutorial.losses.LossOptions`)
and of the run's own field groups below; a new option of a component is one field in its class. Where a
field's valid words are names, they come from the registries (datasets, models, norms, heads, losses,
samplers, trainable rules, placements), read when asked: :func:`field_choices`, :func:`field_help`.
Reading a config from YAML or ``key=value`` overrides lives in :mod:`~nbn_tutorial.train.config_io`
(:mod:`~nbn_tutorial.train.coercion` types the values and renames a legacy key), checking it in
:mod:`~nbn_tutorial.train.validation`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nbn_tutorial.data import CLASS_ORDERS, DATASETS, PROFILES, SAMPLER_REGISTRY, SHOT_RULE_CHOICES
from nbn_tutorial.losses import LOSS_REGISTRY, LossOptions
from nbn_tutorial.models import MODEL_REGISTRY, RIDEOptions
from nbn_tutorial.nn import HEAD_REGISTRY, NORM_REGISTRY, CBNOptions, NBNOptions, NormPlacement
from nbn_tutorial.options import option, option_choices, option_help
from nbn_tutorial.train.dual_path import DualPathOptions
from nbn_tutorial.train.trainable import TRAINABLE_REGISTRY

CHECKPOINT_METRICS = ("balanced_acc", "test_acc", "many_acc", "medium_acc", "few_acc")
SELECTION_SPLITS = ("auto", "val", "test", "none")
DEVICES = ("auto", "cpu", "cuda")
# Fields that may change between an interrupted run and its resumption: they do not change what is computed.
RUN_CONTROL_FIELDS = frozenset({"stop_after_epochs", "num_workers", "cpu_threads", "data_root", "save_every",
                                "download", "device", "list_dir", "skip_bad_images", "max_loss", "allow_other_data"})
AUTO = ("auto",)


@dataclass
class DataFields:
    """Which data a run trains and tests on, and in which order a training epoch draws it."""

    dataset: str = option("digits-lt", "registered dataset name (`nbn-tutorial data list`)", DATASETS.names)
    data_root: str | None = option(None, "dataset folder; null: $NBN_DATA, else ./data")
    imbalance_factor: float | None = option(None, "largest/smallest class size; null: the dataset's default")
    profile: str | None = option(None, "long-tail profile; null: the dataset's default", PROFILES)
    data_seed: int = option(0, "seed of the long-tailed subset selection (and of a permuted class order)")
    class_order: str = option("ldam", "which class gets which long-tail count: ldam (class i the i-th largest, "
                                      "LDAM-DRW) or permuted (a permutation drawn with data_seed)", CLASS_ORDERS)
    max_per_class: int | None = option(None, "training images of the largest class; null: the dataset's default "
                                             "(`nbn-tutorial data stats NAME`; most: the most every class can supply)")
    val_per_class: int | None = option(None, "in-memory datasets: held-out val images per class, drawn from the "
                                             "training images the long tail leaves unused (never changes the "
                                             "training subset); null: the dataset's default (`nbn-tutorial data "
                                             "stats NAME`), 0: no val split")
    download: bool = option(False, "allow downloading the dataset (never by default)")
    list_dir: str | None = option(None, "folder of the list files (list and tree datasets); null: next to the images "
                                        "(a tree: <tree>/lt_lists, or a user cache folder when the tree is read-only)")
    image_size: int | None = option(None, "input size of file datasets (crop side in pixels); null: the dataset's "
                                          "(224)")
    shot_rule: str = option("auto", "many/medium/few rule: auto (the dataset's; a tree: absolute when every group "
                                    "gets a class, else rank), absolute (>100 / 20-100 / <20 train images) or rank "
                                    "(frequency thirds)", SHOT_RULE_CHOICES)
    skip_bad_images: bool = option(False, "leave unreadable image files out (and list them) instead of stopping")
    sampler: str = option("instance", "training sample order: instance (every image once per epoch), class-balanced "
                                      "(every class equally often) or square-root (class c with probability ∝ √n_c); "
                                      "class-aware epochs hold C × n_max draws", SAMPLER_REGISTRY.names)


@dataclass
class ModelFields:
    """The network: a registered model under a registered head, normalised by a registered norm."""

    model: str = option("resnet32", "registered model (RIDE's: shared early stages, num_experts experts)",
                        MODEL_REGISTRY.names)
    norm: str = option("bn", "registered norm (cbn: Compound BN, a reconstruction: see nbn_tutorial.nn.compound)",
                       NORM_REGISTRY.names)
    head: str = option("linear", "registered classifier head (lr: logit rectification)", HEAD_REGISTRY.names)


@dataclass
class SyncField:
    """BatchNorm statistics under DDP."""

    sync_bn: bool = option(False, "SyncBatchNorm under DDP (NBN-aware conversion)")


@dataclass
class LossField:
    """The training loss (its hyper-parameters are :class:`~nbn_tutorial.losses.LossOptions`)."""

    loss: str = option("ce", "registered loss (ride: RIDE models; ride-router: RIDE's router stage)",
                       LOSS_REGISTRY.names)


@dataclass
class Stage2Fields:
    """Decoupled training from a stage-1 checkpoint (:mod:`~nbn_tutorial.train.stage2`)."""

    init_from: str | None = option(None, "stage 2: start from the weights of this checkpoint (a stage-1 run's "
                                         "last.pt)")
    trainable: str = option("all", "what trains: all, classifier (cRT: backbone and its BN statistics frozen), "
                                   "classifier-scale (LWS: one learned scale per class) or router (RIDE's router)",
                            TRAINABLE_REGISTRY.names)
    reinit_classifier: bool = option(False, "stage 2: re-initialise the classifier before training (cRT)")
    allow_other_data: bool = option(False, "init_from: accept a checkpoint trained on other classes or another "
                                           "training set (a deliberate transfer; refused by default)")


@dataclass
class OptimisationFields:
    """SGD and its learning-rate schedule."""

    seed: int = option(0, "seed of initialisation, shuffling and augmentation")
    epochs: int = option(200, "number of training epochs")
    batch_size: int = option(128, "global batch size (split evenly over DDP processes)")
    lr: float = option(0.1, "base learning rate")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(2e-4, "SGD weight decay")
    nesterov: bool = option(False, "Nesterov momentum")
    alpha_weight_decay: bool = option(True, "apply weight decay to NBN alpha too (the official default)")
    schedule: str = option("step", "step (warmup + multipliers at milestones) or cosine (to 0)", ("step", "cosine"))
    warmup_epochs: int = option(5, "linear warmup: lr*(epoch+1)/warmup_epochs for the first epochs")
    milestones: list[int] = option([160, 180], "0-based epochs where the step schedule's multipliers start")
    lr_decay: list[float] = option([0.01, 0.0001], "lr multiplier from each milestone on (not cumulative)")


@dataclass
class EvaluationFields:
    """Evaluation and checkpoints."""

    eval_every: int = option(1, "evaluate on the test split every N epochs (and after the last)")
    save_every: int = option(1, "write last.pt every N epochs (and after the last)")
    checkpoint_metric: str = option("balanced_acc", "metric that selects best.pt", CHECKPOINT_METRICS)
    select_best_on: str = option("auto", "split that selects best.pt: auto (val where the dataset has its own, "
                                         "else no best.pt), val, test (optimistic: says so) or none", SELECTION_SPLITS)
    stop_after_epochs: int | None = option(None, "stop this invocation once this many epochs are done "
                                                 "(resume later); null: train to the end")
    max_loss: float | None = option(1.0e4, "stop like on nan when a batch's training loss exceeds this (an "
                                           "exploding run); null: only nan/inf stop")


@dataclass
class RuntimeFields:
    """Runtime switches (the fast settings are the CUDA defaults)."""

    device: str = option("auto", "auto, cpu or cuda", DEVICES)
    amp: str = option("auto", "autocast: auto (bf16 on CUDA, off on CPU), bf16, fp16 or off",
                      ("auto", "bf16", "fp16", "off"))
    channels_last: bool | str = option("auto", "channels_last memory format; auto: on CUDA", AUTO)
    compile: str = option("auto", "torch.compile: auto (default on CUDA, off on CPU), off, on/default, "
                                  "reduce-overhead (CUDA graphs) or max-autotune",
                          ("auto", "off", "on", "default", "reduce-overhead", "max-autotune"))
    compile_backend: str = option("inductor", "torch.compile backend (inductor; eager/aot_eager for debugging)")
    cudnn_benchmark: bool | str = option("auto", "cudnn.benchmark; auto: on CUDA", AUTO)
    fused_sgd: bool | str = option("auto", "fused SGD kernel; auto: where torch supports it (CUDA, CPU)", AUTO)
    num_workers: int = option(2, "DataLoader workers for file datasets (tensor datasets need none)")
    cpu_threads: int | None = option(None, "torch CPU threads during the run (null: torch's default); 1 is "
                                           "fastest for tiny models such as the digits presets")


# Python collects a dataclass's inherited fields from its LAST base to its first, so the groups are listed in
# reverse: a config (and its config.yaml) reads data, model, norm options, loss, stage 2, optimisation,
# evaluation, runtime.
@dataclass
class Config(RuntimeFields, EvaluationFields, OptimisationFields, Stage2Fields, LossOptions, LossField,
             DualPathOptions, CBNOptions, RIDEOptions, SyncField, NBNOptions, NormPlacement, ModelFields, DataFields):
    """Everything that defines a training run; every field has a default (see configs/*.yaml for presets)."""


CONFIG_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}


def field_choices(name: str) -> tuple[str, ...]:
    """The valid words of config field ``name`` (a registry's names where they are names; empty: any value)."""
    return option_choices(CONFIG_FIELDS[name])


def field_help(name: str) -> str:
    """The help text of config field ``name``, ending with its valid words when it has some."""
    return option_help(CONFIG_FIELDS[name])


def config_to_dict(config: Config) -> dict:
    """The config as plain YAML/JSON-friendly values."""
    return dataclasses.asdict(config)
