"""Models for long-tailed recognition: CIFAR ResNet-32, torchvision ResNet-50/ResNeXt-50, and ``build_model``.

- :mod:`~nbn_tutorial.models.registry`: the model registry (``@register_backbone("name")``);
- :mod:`~nbn_tutorial.models.cifar_resnet`: LDAM-DRW's CIFAR ResNet (``resnet32``);
- :mod:`~nbn_tutorial.models.torchvision_resnets`: torchvision backbones (``resnet50``, ``resnext50_32x4d``);
- :mod:`~nbn_tutorial.models.classifier`: ``LTClassifier`` (backbone + head);
- :mod:`~nbn_tutorial.models.build`: ``build_model`` (model x norm x head by name).

``MODELS``, ``NORMS`` and ``HEADS`` are the names registered when the package is imported. The heads and
NBN helpers re-exported here live in :mod:`nbn_tutorial.nn` (they were importable from here before the split).
"""
from nbn_tutorial.models.build import MODELS, build_model
from nbn_tutorial.models.cifar_resnet import BasicBlock, CifarResNet, ZeroPadShortcut, kaiming_init
from nbn_tutorial.models.classifier import LTClassifier
from nbn_tutorial.models.registry import MODEL_REGISTRY, BackboneBuilder, BackboneSpec, register_backbone
from nbn_tutorial.models.torchvision_resnets import TORCHVISION_BACKBONES, torchvision_resnet
from nbn_tutorial.nn.convert import convert_to_nbn
from nbn_tutorial.nn.heads import HEAD_REGISTRY, HEADS, LogitRectificationHead, NormedLinear
from nbn_tutorial.nn.norms import NORM_REGISTRY, NORMS
from nbn_tutorial.nn.placement import Where, find_last_stage

__all__ = [
    "HEADS",
    "HEAD_REGISTRY",
    "MODELS",
    "MODEL_REGISTRY",
    "NORMS",
    "NORM_REGISTRY",
    "TORCHVISION_BACKBONES",
    "BackboneBuilder",
    "BackboneSpec",
    "BasicBlock",
    "CifarResNet",
    "LTClassifier",
    "LogitRectificationHead",
    "NormedLinear",
    "Where",
    "ZeroPadShortcut",
    "build_model",
    "convert_to_nbn",
    "find_last_stage",
    "kaiming_init",
    "register_backbone",
    "torchvision_resnet",
]
