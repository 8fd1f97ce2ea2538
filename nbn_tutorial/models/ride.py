"""RIDE (Wang et al., ICLR 2021): shared early stages, then several experts with their own later stages and heads.

As in RIDE's public code (frank-xwang/RIDE-LongTailRecognition, ``ride_resnet_cifar.py`` and the ImageNet
``RIDEResNet``/``EAResNet``):

- ``ride_resnet32``: LDAM-DRW's ResNet-32 stem (3x3 conv with 16 channels, ``layer1``) is shared; each
  expert has its own ``layer2`` and ``layer3``. ``reduce_dimension`` (RIDE's CIFAR configs, the default
  here) makes the experts 24 and 48 channels wide instead of 32 and 64.
- ``ride_resnet50``: the ResNet-50 stem up to ``layer2`` is shared; each expert has its own ``layer3``
  and ``layer4`` of Bottleneck blocks, 192 and 384 planes wide with ``reduce_dimension`` (RIDE's
  ImageNet-LT configs) instead of 256 and 512.
- Each expert ends in its own classifier; with ``head="cosine"`` (RIDE's ``use_norm``, the presets) its
  cosine logits are multiplied by s = 30 inside the model, as RIDE does (other heads: s = 1). The
  ensemble's logits are the mean of the experts' logits.
- The optional router (RIDE's expert assignment, ``EAResNet``): after expert i it predicts, from expert
  i's L2-normalised pooled features (16 hidden units, one layer per expert) and the top-5 logits of the
  ensemble so far (a layer shared by all experts), whether expert i+1 is worth running. In eval mode a
  sample then visits experts until the router says stop. It is trained in its own stage (the experts
  frozen) with the ``ride-router`` loss.

In training mode the forward returns ``{"logits", "expert_logits" [E, N, C]}`` (and ``"router_logits"``
[N, E-1] with a router; see :mod:`nbn_tutorial.models.outputs`), in eval mode the ensemble's logits.
NBN (``norm="nbn"``) is applied within each expert with one α per expert (``nbn_groups``); the official
RIDE-NBN normalises every BN of each expert's last stage, which is what ``norm_where="official"`` selects.

The options a run config carries are :class:`RIDEOptions` (``reduce_dimension`` is a build argument only).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models.cifar_resnet import cifar_stage, kaiming_init
from nbn_tutorial.models.classifier import LTClassifier, head_class_weight
from nbn_tutorial.models.outputs import training_output
from nbn_tutorial.models.registry import register_classifier
from nbn_tutorial.nn.heads import HEAD_REGISTRY
from nbn_tutorial.nn.norms import NormLayer
from nbn_tutorial.options import option
from nbn_tutorial.registry import positive_int

RIDE_LOGIT_SCALES = {"cosine": 30.0}   # RIDE's s for its cosine classifiers; every other head keeps s = 1
ROUTER_HIDDEN = 16                      # RIDE's expert_hidden_fc_output_dim
ROUTER_TOP_CHOICES = 5                  # RIDE's default top_choices_num (capped at the number of classes)


@dataclass
class RIDEOptions:
    """The options of RIDE's models that a run config carries."""

    num_experts: int = option(3, "experts of a multi-expert model (ride_resnet32, ride_resnet50); unused by others")
    expert_router: bool = option(False, "RIDE's expert-assignment router (trained in its own stage: trainable=router, "
                                        "loss=ride-router, init_from a RIDE run)")


class Expert(nn.Module):
    """One expert: its own later stages (named ``layerN``) and its own head, whose logits it scales by s."""

    official_nbn_placement = "last-stage"   # the official RIDE-NBN normalises every BN of each expert's last stage

    def __init__(self, stages: Mapping[str, nn.Module], head: nn.Module, logit_scale: float) -> None:
        super().__init__()
        for name, stage in stages.items():
            self.add_module(name, stage)
        self.stage_names = tuple(stages)
        self.head = head
        self.logit_scale = float(logit_scale)

    def forward(self, shared: Tensor) -> Tensor:
        """The expert's last-stage feature map from the shared stages' output."""
        out = shared
        for name in self.stage_names:
            out = getattr(self, name)(out)
        return out

    def logits(self, features: Tensor) -> Tensor:
        """The expert's logits [N, C] from its pooled features [N, D]."""
        return self.head(features) * self.logit_scale


class ExpertStack(nn.ModuleList):
    """The experts side by side; called on the shared map, their last-stage maps concatenated along channels."""

    def forward(self, shared: Tensor) -> Tensor:
        """[N, E·C', h, w]: every expert's last-stage map (the ensemble's "last stage" for diagnosis)."""
        return torch.cat([expert(shared) for expert in self], dim=1)


class ExpertRouter(nn.Module):
    """RIDE's expert assignment: does the next expert help? From the current one's features and the logits so far."""

    def __init__(self, feature_dim: int, num_experts: int, num_classes: int, hidden: int = ROUTER_HIDDEN,
                 top_choices: int = ROUTER_TOP_CHOICES) -> None:
        super().__init__()
        self.top_choices = min(top_choices, num_classes)
        self.hidden = nn.ModuleList([nn.Linear(feature_dim, hidden) for _ in range(num_experts - 1)])
        self.decide = nn.Linear(hidden + self.top_choices, 1)

    def forward(self, features: Tensor, ensemble_logits: Tensor, step: int) -> Tensor:
        """Logit [N] that expert ``step + 1`` helps, from expert ``step``'s pooled features and the mean logits."""
        hidden = F.relu(self.hidden[step](F.normalize(features, dim=1)))
        top = ensemble_logits.topk(self.top_choices, dim=1).values
        return self.decide(torch.cat([top, hidden], dim=1)).squeeze(1)

    def training_logits(self, expert_features: list[Tensor], expert_logits: Tensor) -> Tensor:
        """[N, E-1]: the router's logit after each expert but the last, every expert having run on every sample."""
        running = expert_logits.cumsum(0)
        return torch.stack([self(expert_features[step], running[step] / (step + 1), step)
                            for step in range(len(self.hidden))], dim=1)


class _ScaledHead(nn.Module):
    """An expert's head with its logit scale, as the head of that expert's plain-classifier view."""

    def __init__(self, head: nn.Module, scale: float) -> None:
        super().__init__()
        self.head, self.scale = head, scale

    def forward(self, features: Tensor) -> Tensor:
        """The expert's logits [N, C]."""
        return self.head(features) * self.scale

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, D] of the expert's head."""
        return head_class_weight(self.head)


class _ExpertBackbone(nn.Module):
    """Shared stages, then one expert's stages, then global average pooling (the expert's features [N, D])."""

    def __init__(self, stem: nn.Module, expert: Expert) -> None:
        super().__init__()
        self.stem, self.expert = stem, expert

    def forward(self, x: Tensor) -> Tensor:
        """The expert's pooled features [N, D]."""
        return F.adaptive_avg_pool2d(self.expert(self.stem(x)), 1).flatten(1)


class _EnsembleHead:
    """The ensemble's head: features [N, E·D] -> mean of the experts' logits [N, C] (not a module: owns nothing)."""

    def __init__(self, model: RIDEClassifier) -> None:
        self.model = model

    def __call__(self, features: Tensor) -> Tensor:
        return self.model.expert_logits(features).mean(0)


class RIDEClassifier(nn.Module):
    """A RIDE model: shared ``stem``, ``experts`` (each with later stages and a head), an optional ``router``."""

    def __init__(self, stem: nn.Module, experts: list[Expert], arch: str, num_classes: int, feature_dim: int,
                 router: ExpertRouter | None = None) -> None:
        super().__init__()
        self.stem = stem
        self.experts = ExpertStack(experts)
        self.router = router
        self.arch, self.num_classes, self.feature_dim = arch, num_classes, feature_dim

    @property
    def num_experts(self) -> int:
        """Number of experts E."""
        return len(self.experts)

    def nbn_groups(self) -> list[tuple[str, nn.Module]]:
        """One NBN group per expert: a placement applies within it and it gets its own α."""
        return [(f"experts.{index}", expert) for index, expert in enumerate(self.experts)]

    def classifier_slots(self) -> list[tuple[nn.Module, str]]:
        """(owner, attribute) of every classifier head: one per expert."""
        return [(expert, "head") for expert in self.experts]

    @property
    def last_stage(self) -> nn.Module:
        """The module whose output is the ensemble's last-stage map: every expert's map, concatenated."""
        return self.experts

    @property
    def head(self) -> _EnsembleHead:
        """Features [N, E·D] -> ensemble logits, so the diagnosis reads the ensemble like a plain classifier."""
        return _EnsembleHead(self)

    def features(self, x: Tensor) -> Tensor:
        """Every expert's pooled features, concatenated [N, E·D]."""
        return F.adaptive_avg_pool2d(self.experts(self.stem(x)), 1).flatten(1)

    def expert_logits(self, features: Tensor) -> Tensor:
        """[E, N, C]: each expert's logits from its part of the concatenated features."""
        chunks = features.split(self.feature_dim, dim=1)
        return torch.stack([expert.logits(chunk) for expert, chunk in zip(self.experts, chunks)])

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """Eval: ensemble logits (routed when there is a router). Training: logits plus per-expert outputs."""
        if not self.training and self.router is not None:
            return self.routed(x)[0]
        features = self.features(x)
        per_expert = self.expert_logits(features)
        logits = per_expert.mean(0)
        if not self.training:
            return logits
        extras = {"expert_logits": per_expert}
        if self.router is not None:
            extras["router_logits"] = self.router.training_logits(list(features.split(self.feature_dim, dim=1)),
                                                                  per_expert)
        return training_output(logits, **extras)

    def routed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(logits [N, C], experts used [N]): each sample visits experts until the router says the next won't help."""
        if self.router is None:
            raise UserError("this RIDE model has no router; build it with expert_router=True")
        shared = self.stem(x)
        features = F.adaptive_avg_pool2d(self.experts[0](shared), 1).flatten(1)
        total = self.experts[0].logits(features)
        used = torch.ones(len(x), dtype=torch.int64, device=x.device)
        active = torch.arange(len(x), device=x.device)
        for step in range(1, self.num_experts):
            go_on = torch.sigmoid(self.router(features, total[active] / step, step - 1)) > 0.5
            active = active[go_on]
            if len(active) == 0:
                break
            expert = self.experts[step]
            features = F.adaptive_avg_pool2d(expert(shared[active]), 1).flatten(1)
            total = total.index_add(0, active, expert.logits(features))
            used[active] += 1
        return total / used[:, None].to(total.dtype), used

    def classifier_weight(self) -> Tensor:
        """Every expert's class weight vectors side by side [C, E·D] (the ensemble's linear map on its features)."""
        return torch.cat([head_class_weight(expert.head) for expert in self.experts], dim=1)

    def expert_view(self, index: int) -> LTClassifier:
        """Expert ``index`` (0-based) as a plain classifier sharing this model's modules: shared stages, its own."""
        expert = self.experts[index]
        return LTClassifier(_ExpertBackbone(self.stem, expert), _ScaledHead(expert.head, expert.logit_scale),
                            f"{self.arch} expert {index + 1}", self.num_classes, self.feature_dim)

    def expert_views(self) -> dict[str, nn.Module]:
        """Each expert as a plain classifier, then the ensemble (this model), by label."""
        return {**{f"expert {index + 1}": self.expert_view(index) for index in range(self.num_experts)},
                "ensemble": self}


def _ride_outputs(options: Mapping[str, Any]) -> tuple[str, ...]:
    return ("expert_logits", "router_logits") if options["expert_router"] else ("expert_logits",)


def _check_options(num_experts: int, expert_router: bool) -> None:
    positive_int(num_experts, "num_experts")
    if expert_router and num_experts < 2:
        raise UserError("the expert router decides whether to run the next expert, so it needs num_experts >= 2")


def _experts(num_experts: int, make_stages, feature_dim: int, num_classes: int, head: str) -> list[Expert]:
    make_head = HEAD_REGISTRY.get(head)
    scale = RIDE_LOGIT_SCALES.get(head, 1.0)
    return [Expert(make_stages(), make_head(feature_dim, num_classes), scale) for _ in range(num_experts)]


@register_classifier("ride_resnet32", options=RIDEOptions, outputs=_ride_outputs)
def ride_resnet32(num_classes: int, in_channels: int, norm_layer: NormLayer, head: str, *, num_experts: int = 3,
                  expert_router: bool = False, reduce_dimension: bool = True) -> RIDEClassifier:
    """RIDE ResNet-32: shared conv + layer1 (16 ch), experts with layer2/layer3 (24/48 ch, or 32/64 unreduced)."""
    _check_options(num_experts, expert_router)
    stem = nn.Sequential(OrderedDict(conv1=nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False),
                                     bn1=norm_layer(16), relu=nn.ReLU(), layer1=cifar_stage(16, 16, 5, 1, norm_layer)))
    width2, width3 = (24, 48) if reduce_dimension else (32, 64)

    def stages() -> dict[str, nn.Module]:
        return {"layer2": cifar_stage(16, width2, 5, 2, norm_layer),
                "layer3": cifar_stage(width2, width3, 5, 2, norm_layer)}

    router = ExpertRouter(width3, num_experts, num_classes) if expert_router else None
    model = RIDEClassifier(stem, _experts(num_experts, stages, width3, num_classes, head), "ride_resnet32",
                           num_classes, width3, router)
    model.apply(kaiming_init)   # LDAM-DRW's and RIDE's init of every conv and linear layer
    return model


def bottleneck_stage(inplanes: int, planes: int, blocks: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    """A torchvision ResNet stage of Bottleneck blocks (``planes`` × 4 output channels, 1x1 projection shortcut)."""
    from torchvision.models.resnet import Bottleneck, conv1x1   # deferred: torchvision: heavy, only this path needs it

    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(conv1x1(inplanes, planes * Bottleneck.expansion, stride),
                                   norm_layer(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, downsample, norm_layer=norm_layer)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, norm_layer=norm_layer) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _torchvision_init(module: nn.Module) -> None:
    """RIDE's ImageNet init (torchvision's): conv weights N(0, 2/(k·k·out)), i.e. Kaiming normal, fan out."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


@register_classifier("ride_resnet50", options=RIDEOptions, outputs=_ride_outputs)
def ride_resnet50(num_classes: int, in_channels: int, norm_layer: NormLayer, head: str, *, num_experts: int = 3,
                  expert_router: bool = False, reduce_dimension: bool = True) -> RIDEClassifier:
    """RIDE ResNet-50: shared stem to layer2, experts with layer3/layer4 (192/384 planes, or 256/512 unreduced)."""
    _check_options(num_experts, expert_router)
    stem = nn.Sequential(OrderedDict(conv1=nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                                     bn1=norm_layer(64), relu=nn.ReLU(inplace=True),
                                     maxpool=nn.MaxPool2d(3, stride=2, padding=1),
                                     layer1=bottleneck_stage(64, 64, 3, 1, norm_layer),
                                     layer2=bottleneck_stage(256, 128, 4, 2, norm_layer)))
    planes3, planes4 = (192, 384) if reduce_dimension else (256, 512)

    def stages() -> dict[str, nn.Module]:
        return {"layer3": bottleneck_stage(512, planes3, 6, 2, norm_layer),
                "layer4": bottleneck_stage(planes3 * 4, planes4, 3, 2, norm_layer)}

    feature_dim = planes4 * 4
    router = ExpertRouter(feature_dim, num_experts, num_classes) if expert_router else None
    model = RIDEClassifier(stem, _experts(num_experts, stages, feature_dim, num_classes, head), "ride_resnet50",
                           num_classes, feature_dim, router)
    model.apply(_torchvision_init)
    return model
