"""The run config: every field of a training run with its default, help text and valid words.

A :class:`Config` is plain data. Reading it from YAML or ``key=value`` overrides lives in
:mod:`~nbn_tutorial.train.config_io`, checking it in :mod:`~nbn_tutorial.train.validation`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CHECKPOINT_METRICS = ("balanced_acc", "test_acc", "many_acc", "medium_acc", "few_acc")
SELECTION_SPLITS = ("auto", "val", "test", "none")
DEVICES = ("auto", "cpu", "cuda")
# Fields that may change between an interrupted run and its resumption: they do not change what is computed.
RUN_CONTROL_FIELDS = frozenset({"stop_after_epochs", "num_workers", "cpu_threads", "data_root", "save_every",
                                "download", "device", "list_dir", "skip_bad_images", "max_loss", "allow_other_data"})
AUTO = ("auto",)


def _option(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field with a help text and, for string options, the valid words."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Config:
    """Everything that defines a training run; every field has a default (see configs/*.yaml for presets)."""

    # data
    dataset: str = _option("digits-lt", "registered dataset name (`nbn-tutorial data list`)")
    data_root: str | None = _option(None, "dataset folder; null: $NBN_DATA, else ./data")
    imbalance_factor: float | None = _option(None, "largest/smallest class size; null: the dataset's default")
    profile: str | None = _option(None, "long-tail profile exp or step; null: the dataset's default")
    data_seed: int = _option(0, "seed of the long-tailed subset selection (and of a permuted class order)")
    class_order: str = _option("ldam", "which class gets which long-tail count: ldam (class i the i-th largest, "
                                       "LDAM-DRW) or permuted (a permutation drawn with data_seed)", ("ldam", "permuted"))
    max_per_class: int | None = _option(None, "training images of the largest class; null: the dataset's default "
                                              "(fashion-mnist-lt 5000, CIFAR-10-LT's counts; others the most every "
                                              "class can supply)")
    val_per_class: int | None = _option(None, "in-memory datasets: held-out val images per class, drawn from the "
                                              "training images the long tail leaves unused (never changes the "
                                              "training subset); null: the dataset's default (`nbn-tutorial data "
                                              "stats NAME`), 0: no val split")
    download: bool = _option(False, "allow downloading the dataset (never by default)")
    list_dir: str | None = _option(None, "folder of the list files (list datasets, imagefolder-lt); null: next to the "
                                         "images (imagefolder-lt: <tree>/lt_lists, or a user cache folder when the "
                                         "tree is read-only)")
    image_size: int | None = _option(None, "input size of file datasets (crop side in pixels); null: the dataset's "
                                           "(224)")
    shot_rule: str = _option("auto", "many/medium/few rule: auto (the dataset's; imagefolder-lt: absolute when every "
                                     "group gets a class, else rank), absolute (>100 / 20-100 / <20 train images) or "
                                     "rank (frequency thirds)", ("auto", "absolute", "rank"))
    skip_bad_images: bool = _option(False, "leave unreadable image files out (and list them) instead of stopping")
    sampler: str = _option("instance", "training sample order: instance (every image once per epoch), class-balanced "
                                       "(every class equally often) or square-root (class c with probability ∝ √n_c); "
                                       "class-aware epochs hold C × n_max draws")
    # model
    model: str = _option("resnet32", "resnet32, resnet50, resnext50_32x4d, ride_resnet32 or ride_resnet50 (RIDE: "
                                     "shared early stages, num_experts experts)")
    norm: str = _option("bn", "bn, nbn or cbn (Compound BN, a reconstruction: see nbn_tutorial.nn.compound)")
    head: str = _option("linear", "linear, lr (logit rectification) or cosine")
    nbn_where: str = _option("official", "which BN layers become NBN (or CBN): official, last-stage or all")
    alpha_init: str | float = _option("official", "initial NBN alpha: official (1.0), unit-gamma (sqrt C) or a number")
    nbn_normalize: str = _option("both", "what NBN normalises: both (gamma and beta, the official formulation) or "
                                         "weight (gamma only; beta stays a plain BN bias)", ("both", "weight"))
    share_alpha: bool = _option(True, "one alpha shared by all NBN layers (the official design)")
    sync_bn: bool = _option(False, "SyncBatchNorm under DDP (NBN-aware conversion)")
    num_experts: int = _option(3, "experts of a multi-expert model (ride_resnet32, ride_resnet50); unused by others")
    expert_router: bool = _option(False, "RIDE's expert-assignment router (trained in its own stage: trainable=router, "
                                         "loss=ride-router, init_from a RIDE run)")
    cbn_components: int = _option(2, "CBN: Gaussian components K per layer (K = 1 is plain BN)")
    cbn_shared_affine: bool = _option(False, "CBN: one gamma/beta shared by the components (default: one each)")
    cbn_temperature: float = _option(1.0, "CBN: temperature of the responsibilities' softmax over components")
    cbn_init: str = _option("split", "CBN: how the components start apart: split (the first batch cut along its first "
                                     "principal direction) or perturb (means drawn around BN's)", ("split", "perturb"))
    cbn_dual_path: bool = _option(False, "CBN: train with the auxiliary class-aware split path and the KL consistency "
                                         "term (see nbn_tutorial.train.dual_path)")
    cbn_groups: str = _option("classes", "CBN dual path: class groups by training frequency with equal numbers of "
                                         "classes or of samples", ("classes", "samples"))
    cbn_kl_weight: float = _option(1.0, "CBN dual path: weight of KL(stop-grad(p_aux) || p_main)")
    cbn_min_group: int = _option(4, "CBN dual path: fewest samples of a class group in a batch to take its own "
                                    "statistics from")
    cbn_tiny_group: str = _option("running", "CBN dual path: how a smaller group is normalised: running (its "
                                             "component's running statistics) or batch (the whole batch's)",
                                  ("running", "batch"))
    cbn_group_update: str = _option("main", "CBN dual path: whose class-group statistics also update the running "
                                            "mixture: main (the main path's input, in its pass), aux (the auxiliary "
                                            "path's) or none", ("main", "aux", "none"))
    # loss
    loss: str = _option("ce", "ce, balanced-softmax, logit-adjustment, ldam-drw, focal, cb-ce, cb-focal, ride (RIDE "
                              "models) or ride-router (RIDE's router stage)")
    tau: float = _option(1.0, "logit-adjustment temperature")
    focal_gamma: float = _option(1.0, "focal loss gamma")
    cb_beta: float = _option(0.9999, "class-balanced beta (DRW and cb-* losses)")
    ldam_max_m: float = _option(0.5, "largest LDAM margin")
    ldam_s: float = _option(30.0, "LDAM logit scale")
    drw_epoch: int = _option(160, "0-based epoch from which DRW re-weights")
    posthoc_tau: float = _option(0.0, "post-hoc logit adjustment at evaluation (ce only); 0 = off")
    diversity_factor: float = _option(-0.2, "RIDE loss: weight of the distribution-aware diversity term (RIDE's "
                                            "default -0.2; 0 turns it off)")
    diversity_temperature: float = _option(1.0, "RIDE loss: base temperature of the diversity term")
    diversity_reweight_factor: float = _option(0.05, "RIDE loss: how far the diversity temperature follows the class "
                                                     "prior from drw_epoch on (RIDE: 0.05 CIFAR, 0.02 ImageNet-LT)")
    # stage 2 (decoupled training from a stage-1 checkpoint)
    init_from: str | None = _option(None, "stage 2: start from the weights of this checkpoint (a stage-1 run's last.pt)")
    trainable: str = _option("all", "what trains: all, classifier (cRT: backbone and its BN statistics frozen), "
                                    "classifier-scale (LWS: one learned scale per class) or router (RIDE's router)")
    reinit_classifier: bool = _option(False, "stage 2: re-initialise the classifier before training (cRT)")
    allow_other_data: bool = _option(False, "init_from: accept a checkpoint trained on other classes or another "
                                            "training set (a deliberate transfer; refused by default)")
    # optimisation
    seed: int = _option(0, "seed of initialisation, shuffling and augmentation")
    epochs: int = _option(200, "number of training epochs")
    batch_size: int = _option(128, "global batch size (split evenly over DDP processes)")
    lr: float = _option(0.1, "base learning rate")
    momentum: float = _option(0.9, "SGD momentum")
    weight_decay: float = _option(2e-4, "SGD weight decay")
    nesterov: bool = _option(False, "Nesterov momentum")
    alpha_weight_decay: bool = _option(True, "apply weight decay to NBN alpha too (the official default)")
    schedule: str = _option("step", "step (warmup + multipliers at milestones) or cosine (to 0)", ("step", "cosine"))
    warmup_epochs: int = _option(5, "linear warmup: lr*(epoch+1)/warmup_epochs for the first epochs")
    milestones: list[int] = _option([160, 180], "0-based epochs where the step schedule's multipliers start")
    lr_decay: list[float] = _option([0.01, 0.0001], "lr multiplier from each milestone on (not cumulative)")
    # evaluation and checkpoints
    eval_every: int = _option(1, "evaluate on the test split every N epochs (and after the last)")
    save_every: int = _option(1, "write last.pt every N epochs (and after the last)")
    checkpoint_metric: str = _option("balanced_acc", "metric that selects best.pt", CHECKPOINT_METRICS)
    select_best_on: str = _option("auto", "split that selects best.pt: auto (val where the dataset has its own, "
                                          "else no best.pt), val, test (optimistic: says so) or none",
                                  SELECTION_SPLITS)
    stop_after_epochs: int | None = _option(None, "stop this invocation once this many epochs are done "
                                                  "(resume later); null: train to the end")
    max_loss: float | None = _option(1.0e4, "stop like on nan when a batch's training loss exceeds this (an "
                                            "exploding run); null: only nan/inf stop")
    # runtime switches (the fast settings are the CUDA defaults)
    device: str = _option("auto", "auto, cpu or cuda", DEVICES)
    amp: str = _option("auto", "autocast: auto (bf16 on CUDA, off on CPU), bf16, fp16 or off",
                       ("auto", "bf16", "fp16", "off"))
    channels_last: bool | str = _option("auto", "channels_last memory format; auto: on CUDA", AUTO)
    compile: str = _option("auto", "torch.compile: auto (default on CUDA, off on CPU), off, on/default, "
                                   "reduce-overhead (CUDA graphs) or max-autotune",
                           ("auto", "off", "on", "default", "reduce-overhead", "max-autotune"))
    compile_backend: str = _option("inductor", "torch.compile backend (inductor; eager/aot_eager for debugging)")
    cudnn_benchmark: bool | str = _option("auto", "cudnn.benchmark; auto: on CUDA", AUTO)
    fused_sgd: bool | str = _option("auto", "fused SGD kernel; auto: where torch supports it (CUDA, CPU)", AUTO)
    num_workers: int = _option(2, "DataLoader workers for file datasets (tensor datasets need none)")
    cpu_threads: int | None = _option(None, "torch CPU threads during the run (null: torch's default); 1 is "
                                            "fastest for tiny models such as the digits presets")


CONFIG_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}


def config_to_dict(config: Config) -> dict:
    """The config as plain YAML/JSON-friendly values."""
    return dataclasses.asdict(config)
