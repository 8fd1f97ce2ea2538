"""The options of the norms, one typed class each: where a converting norm goes, NBN's and Compound BN's own.

Each class is registered with its norm (:func:`~nbn_tutorial.nn.norms.register_norm`), and the run config
carries its fields under these keys; :func:`~nbn_tutorial.nn.norms.norm_kwargs` turns them into the
converter's keyword arguments (``arg`` names an argument that differs from the key), as timm's
``norm_kwargs``.
"""
from __future__ import annotations

from dataclasses import dataclass

from nbn_tutorial.nn.compound import COMPONENT_INITS
from nbn_tutorial.nn.convert import ALPHA_INITS
from nbn_tutorial.nn.nbn import NORMALIZE_OPTIONS
from nbn_tutorial.nn.placement import PLACEMENT_REGISTRY
from nbn_tutorial.options import option

LEGACY_WHERE_KEY = "nbn_where"   # the key's name before it placed Compound BN too (still read, with a note)


@dataclass
class NormPlacement:
    """Which BatchNorm2d layers a converting norm (NBN, Compound BN) replaces."""

    norm_where: str = option("official", "which BN layers a converting norm (NBN, CBN) replaces; official: NBN's "
                                         "(the key was nbn_where before)", PLACEMENT_REGISTRY.names, arg="where")


@dataclass
class NBNOptions:
    """Normalizing BN's options (:func:`~nbn_tutorial.nn.convert.convert_to_nbn`)."""

    alpha_init: str | float = option("official", "initial NBN alpha: official (1.0), unit-gamma (sqrt C) or a "
                                                 "number", ALPHA_INITS)
    nbn_normalize: str = option("both", "what NBN normalises: both (gamma and beta, the official formulation) or "
                                        "weight (gamma only; beta stays a plain BN bias)", NORMALIZE_OPTIONS,
                                arg="normalize")
    share_alpha: bool = option(True, "one alpha shared by all NBN layers (the official design)")


@dataclass
class CBNOptions:
    """Compound BN's layer options (:func:`~nbn_tutorial.nn.convert.convert_to_cbn`)."""

    cbn_components: int = option(2, "CBN: Gaussian components K per layer (K = 1 is plain BN)", arg="components")
    cbn_shared_affine: bool = option(False, "CBN: one gamma/beta shared by the components (default: one each)",
                                     arg="shared_affine")
    cbn_temperature: float = option(1.0, "CBN: temperature of the responsibilities' softmax over components",
                                    arg="temperature")
    cbn_init: str = option("split", "CBN: how the components start apart: split (the first batch cut along its "
                                    "first principal direction) or perturb (means drawn around BN's)",
                           COMPONENT_INITS, arg="init")
