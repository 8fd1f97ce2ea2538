"""Models for long-tailed recognition: CIFAR ResNet-32, torchvision ResNet-50/ResNeXt-50, and ``build_model``.

- :mod:`~nbn_tutorial.models.registry`: the model registry (``@register_backbone("name")``);
- :mod:`~nbn_tutorial.models.cifar_resnet`: LDAM-DRW's CIFAR ResNet (``resnet32``);
- :mod:`~nbn_tutorial.models.torchvision_resnets`: torchvision backbones (``resnet50``, ``resnext50_32x4d``);
- :mod:`~nbn_tutorial.models.classifier`: ``LTClassifier`` (backbone + head);
- :mod:`~nbn_tutorial.models.ride`: RIDE's multi-expert models (``ride_resnet32``, ``ride_resnet50``);
- :mod:`~nbn_tutorial.models.outputs`: what a forward returns (logits, plus named extras while training);
- :mod:`~nbn_tutorial.models.rebalance`: classifier re-balancing (cRT re-init, LWS scales, ``tau_normalize``);
- :mod:`~nbn_tutorial.models.build`: ``build_model`` (model x norm x head by name).

``MODELS``, ``NORMS`` and ``HEADS`` are the names registered when the package is imported. The heads and
NBN helpers re-exported here live in :mod:`nbn_tutorial.nn` (they were importable from here before the split).
"""
from nbn_tutorial.models.build import MODELS, build_model
from nbn_tutorial.models.cifar_resnet import BasicBlock, CifarResNet, ZeroPadShortcut, kaiming_init
from nbn_tutorial.models.classifier import CLASS_SCALES, LTClassifier, head_class_weight
from nbn_tutorial.models.outputs import LOGITS_KEY, split_output, training_output
from nbn_tutorial.models.rebalance import (add_class_scales, class_weight_layer, classifier_heads, reset_classifier,
                                           tau_normalize, tau_normalized)
from nbn_tutorial.models.registry import (MODEL_REGISTRY, BackboneBuilder, BackboneSpec, ClassifierSpec,
                                          model_kwargs, model_options, register_backbone, register_classifier)
from nbn_tutorial.models.ride import Expert, ExpertRouter, RIDEClassifier, RIDEOptions
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
    "CLASS_SCALES",
    "ClassifierSpec",
    "Expert",
    "ExpertRouter",
    "LOGITS_KEY",
    "RIDEClassifier",
    "add_class_scales",
    "class_weight_layer",
    "classifier_heads",
    "head_class_weight",
    "model_kwargs",
    "model_options",
    "RIDEOptions",
    "register_classifier",
    "reset_classifier",
    "split_output",
    "tau_normalize",
    "tau_normalized",
    "training_output",
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
