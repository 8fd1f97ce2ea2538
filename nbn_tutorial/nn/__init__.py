"""Normalization layers for long-tailed recognition: NBN, Compound BN, their converters, the norm factory, heads.

- :mod:`~nbn_tutorial.nn.nbn`: the NBN layers and their α (``normalized_affine``, ``NormalizedBatchNorm2d``, ...);
- :mod:`~nbn_tutorial.nn.compound`: Compound BN (``CompoundBatchNorm2d``), a reconstruction from the paper's abstract;
- :mod:`~nbn_tutorial.nn.class_split`: CBN's class groups and class-aware split normalisation (``class_split``);
- :mod:`~nbn_tutorial.nn.placement`: which BatchNorm2d layers a norm replaces (``where``);
- :mod:`~nbn_tutorial.nn.convert`: ``replace_batchnorms`` (the one replacement mechanism), ``convert_to_nbn`` and
  ``convert_to_cbn``;
- :mod:`~nbn_tutorial.nn.sync`: NBN-aware ``convert_sync_batchnorm`` for DDP;
- :mod:`~nbn_tutorial.nn.norms`: norms by name (``create_norm_layer``, ``get_norm_layer``, ``apply_norm``,
  ``norm_kwargs``);
- :mod:`~nbn_tutorial.nn.options`: the norms' typed options (placement, NBN's, Compound BN's);
- :mod:`~nbn_tutorial.nn.heads`: classifier heads by name.
"""
from nbn_tutorial.nn.class_split import GROUP_BALANCES, class_split, forward_split, frequency_groups
from nbn_tutorial.nn.compound import (
    COMPONENT_INITS,
    TINY_GROUP_RULES,
    ClassSplit,
    CompoundBatchNorm2d,
    compound_layers,
    sample_moments,
    weighted_statistics,
)
from nbn_tutorial.nn.convert import (
    ALPHA_INITS,
    LayerBuilder,
    StateTransfer,
    convert_to_cbn,
    convert_to_nbn,
    move_batchnorm_state,
    replace_batchnorms,
)
from nbn_tutorial.nn.heads import HEAD_REGISTRY, HEADS, HeadFactory, LogitRectificationHead, NormedLinear, create_head
from nbn_tutorial.nn.nbn import (
    NORM_EPS,
    NORMALIZE_OPTIONS,
    SHARED_ALPHA_NAME,
    NormalizedAffineMixin,
    NormalizedBatchNorm2d,
    NormalizedSyncBatchNorm,
    alpha_parameters,
    nbn_layers,
    normalized_affine,
)
from nbn_tutorial.nn.norms import (
    NORM_REGISTRY,
    NORMS,
    NormConverter,
    NormLayer,
    NormSpec,
    apply_norm,
    backbone_norm_layer,
    create_norm_layer,
    get_norm_layer,
    norm_kwargs,
    register_norm,
)
from nbn_tutorial.nn.options import LEGACY_WHERE_KEY, CBNOptions, NBNOptions, NormPlacement
from nbn_tutorial.nn.placement import (
    PLACEMENT_REGISTRY,
    WHERE_OPTIONS,
    PlacementRule,
    Where,
    find_last_stage,
    select_batchnorms,
)
from nbn_tutorial.nn.sync import convert_sync_batchnorm

__all__ = [
    "ALPHA_INITS",
    "CBNOptions",
    "LEGACY_WHERE_KEY",
    "NBNOptions",
    "NormPlacement",
    "norm_kwargs",
    "COMPONENT_INITS",
    "GROUP_BALANCES",
    "TINY_GROUP_RULES",
    "ClassSplit",
    "CompoundBatchNorm2d",
    "StateTransfer",
    "forward_split",
    "frequency_groups",
    "class_split",
    "compound_layers",
    "convert_to_cbn",
    "sample_moments",
    "weighted_statistics",
    "HEADS",
    "HEAD_REGISTRY",
    "NORMS",
    "NORM_EPS",
    "NORMALIZE_OPTIONS",
    "NORM_REGISTRY",
    "PLACEMENT_REGISTRY",
    "SHARED_ALPHA_NAME",
    "WHERE_OPTIONS",
    "HeadFactory",
    "LayerBuilder",
    "LogitRectificationHead",
    "NormConverter",
    "NormLayer",
    "NormSpec",
    "NormalizedAffineMixin",
    "NormalizedBatchNorm2d",
    "NormalizedSyncBatchNorm",
    "NormedLinear",
    "PlacementRule",
    "Where",
    "alpha_parameters",
    "apply_norm",
    "backbone_norm_layer",
    "convert_sync_batchnorm",
    "convert_to_nbn",
    "create_head",
    "create_norm_layer",
    "find_last_stage",
    "get_norm_layer",
    "move_batchnorm_state",
    "nbn_layers",
    "normalized_affine",
    "register_norm",
    "replace_batchnorms",
    "select_batchnorms",
]
