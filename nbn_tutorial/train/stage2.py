"""Decoupled training (Kang et al., ICLR 2020): a stage-2 run starts from a stage-1 checkpoint and trains a part.

Config keys:

- ``init_from``: the checkpoint whose weights the run starts from (a stage-1 run's ``last.pt``; the data
  settings must be the stage-1 run's, since stage 2 re-balances the classifier on the same training set);
- ``trainable``: a registered rule (:data:`TRAINABLE_REGISTRY`) naming what trains:

  - ``all``: everything (stage 1, or fine-tuning from ``init_from``);
  - ``classifier``: only the classifier head(s) (cRT when combined with ``reinit_classifier`` and a
    class-balanced ``sampler``);
  - ``classifier-scale``: LWS; every head gets one learnable scale per class (initialised to 1) and only
    the scales train;
  - ``router``: only a RIDE model's expert-assignment router;

- ``reinit_classifier``: re-initialise the head(s) before training (PyTorch's default init, as
  classifier-balancing's re-trained classifier).

Everything a rule does not train is frozen: its parameters stop requiring gradients and its modules stay
in eval mode whatever ``train()`` is called, so BatchNorm running statistics keep their stage-1 values
bit for bit (the "eval-mode backbone" of cRT).
"""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path

from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import Registry, check_choice
from nbn_tutorial.train.config import Config

# Fields that decide the training set: a stage-2 run must use the stage-1 run's.
DATA_FIELDS = ("dataset", "imbalance_factor", "profile", "data_seed", "class_order", "max_per_class")


@dataclasses.dataclass(frozen=True)
class TrainableRule:
    """What a ``trainable`` value trains: ``trained(model)`` lists the parameters that train (None: all of
    them); ``shape(model)`` adds what the rule needs to the model (LWS scales), also when a finished run is
    rebuilt for evaluation; ``needs_init`` says whether the rule only makes sense from a checkpoint."""

    trained: Callable[[nn.Module], list[nn.Parameter] | None]
    shape: Callable[[nn.Module], None] = lambda model: None
    needs_init: bool = True


TRAINABLE_REGISTRY: Registry[TrainableRule] = Registry("trainable")


def register_trainable(name: str, rule: TrainableRule) -> TrainableRule:
    """Register the ``trainable`` value ``name``."""
    return TRAINABLE_REGISTRY.register(name, rule)


def _head_parameters(model: nn.Module) -> list[nn.Parameter]:
    from nbn_tutorial.models import classifier_heads

    return [p for head in classifier_heads(model) for p in head.parameters()]


def _add_scales(model: nn.Module) -> None:
    from nbn_tutorial.models import add_class_scales

    add_class_scales(model)


def _scale_parameters(model: nn.Module) -> list[nn.Parameter]:
    from nbn_tutorial.models import CLASS_SCALES, classifier_heads

    return [getattr(head, CLASS_SCALES) for head in classifier_heads(model)]


def _router_parameters(model: nn.Module) -> list[nn.Parameter]:
    router = getattr(model, "router", None)
    if router is None:
        raise UserError("trainable=router trains a RIDE model's expert router, but this model has none; set "
                        "expert_router=true (with model ride_resnet32 or ride_resnet50)")
    return list(router.parameters())


register_trainable("all", TrainableRule(trained=lambda model: None, needs_init=False))
register_trainable("classifier", TrainableRule(trained=_head_parameters))
register_trainable("classifier-scale", TrainableRule(trained=_scale_parameters, shape=_add_scales))
register_trainable("router", TrainableRule(trained=_router_parameters))

TRAINABLES: tuple[str, ...] = TRAINABLE_REGISTRY.names()


def shape_model(model: nn.Module, config: Config) -> nn.Module:
    """The structure the config's ``trainable`` rule adds (LWS scales), applied in place; returns ``model``."""
    TRAINABLE_REGISTRY.get(config.trainable).shape(model)
    return model


def trained_parameters(model: nn.Module, config: Config) -> list[nn.Parameter]:
    """The parameters the config's rule trains, in model order (LWS: only the class scales)."""
    chosen = TRAINABLE_REGISTRY.get(config.trainable).trained(model)
    if chosen is None:
        return list(model.parameters())
    ids = {id(p) for p in chosen}
    return [p for p in model.parameters() if id(p) in ids]


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def keep_in_eval_mode(module: nn.Module) -> None:
    """Make ``module`` (and everything in it) stay in eval mode whenever ``train()`` is called on it or a parent."""
    module.train = types.MethodType(_eval_only, module)
    module.eval()


def freeze_untrained(model: nn.Module, trained: list[nn.Parameter]) -> list[str]:
    """Stop gradients to every parameter not in ``trained`` and keep every module holding none of them in eval
    mode (BatchNorm statistics frozen); returns the names of the frozen top-level modules."""
    keep = {id(p) for p in trained}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    frozen = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if any(id(p) in keep for p in child.parameters()):
                visit(full, child)
            else:
                keep_in_eval_mode(child)
                frozen.append(full)

    visit("", model)
    return frozen


def _data_differences(stored: Config, current: Config) -> list[str]:
    from nbn_tutorial.train.run_dir import resolve_dataset_defaults

    old, new = resolve_dataset_defaults(stored), resolve_dataset_defaults(current)
    return [f"{key}: {getattr(old, key)!r} -> {getattr(new, key)!r}" for key in DATA_FIELDS
            if getattr(old, key) != getattr(new, key)]


INIT_REMEDY = ("training from it cannot work: point init_from at another checkpoint (such as the stage-1 run's "
               "best.pt) or train stage 1 again")


def _check_fits(model: nn.Module, state: dict, stored: Config, config: Config, path: Path) -> None:
    """A UserError naming the first tensor of ``state`` whose shape does not fit ``model``."""
    from nbn_tutorial.train.checkpoints import state_mismatch

    expected = model.state_dict()
    if any(key in state["model"] and tuple(state["model"][key].shape) != tuple(value.shape)
           for key, value in expected.items()):
        raise UserError(f"init_from {str(path)!r} holds a {stored.model} {stored.norm} model with a {stored.head} "
                        f"head that does not fit this run's {config.model} {config.norm} {config.head} "
                        f"({state_mismatch(expected, state['model'])}); use the stage-1 model settings")


def load_initial_weights(model: nn.Module, config: Config, allowed_missing: set[str],
                         data: dict | None = None) -> dict:
    """Load ``config.init_from`` into ``model``; only ``allowed_missing`` keys may lack. Returns the checkpoint.

    ``data`` is this run's training-data identity (:func:`~.identity.data_identity`): the checkpoint must have
    been trained on the same classes and training set unless ``config.allow_other_data``.
    """
    from nbn_tutorial.train.checkpoints import checkpoint_config, read_checkpoint
    from nbn_tutorial.train.guards import check_finite_checkpoint
    from nbn_tutorial.train.identity import TRAIN_OVERRIDE, check_training_set

    path = Path(config.init_from).expanduser()   # relative to the working directory, like --out
    state = read_checkpoint(path)
    check_finite_checkpoint(state, path, INIT_REMEDY)
    stored = checkpoint_config(state, path)
    differences = _data_differences(stored, config)
    if differences and not config.allow_other_data:
        raise UserError(f"init_from {str(path)!r} was trained on other data ({'; '.join(differences)}); stage 2 "
                        "re-balances the classifier on the stage-1 training set, so use the stage-1 data settings, or "
                        f"{TRAIN_OVERRIDE}")
    if data is not None and not config.allow_other_data:
        check_training_set(state, data, f"init_from {str(path)!r}")
    _check_fits(model, state, stored, config, path)
    result = model.load_state_dict(state["model"], strict=False)
    missing = sorted(set(result.missing_keys) - allowed_missing)
    if result.unexpected_keys or missing:
        extra = result.unexpected_keys[:3] or missing[:3]
        raise UserError(f"init_from {str(path)!r} does not match this run's model (keys {', '.join(extra)}); "
                        f"it holds a {stored.model} {stored.norm} model: use its model settings")
    return state


def prepare_stage2(model: nn.Module, config: Config, data: dict | None = None) -> list[str]:
    """Apply the config's stage-2 settings to a freshly built model in place: load ``init_from`` (checked against
    ``data``, the run's training-data identity), re-initialise the classifier, freeze what the ``trainable`` rule
    does not train. Returns the frozen modules' names."""
    from nbn_tutorial.models import reset_classifier

    chosen = TRAINABLE_REGISTRY.get(config.trainable).trained(model)   # None: everything trains
    if config.init_from:
        # Parameters a partial rule trains may be new (LWS scales, the router): the checkpoint need not hold them.
        names = {id(p): name for name, p in model.named_parameters()}
        load_initial_weights(model, config, set() if chosen is None else {names[id(p)] for p in chosen}, data)
    if config.reinit_classifier:
        reset_classifier(model)
    return [] if chosen is None else freeze_untrained(model, chosen)


def validate_stage2(config: Config) -> None:
    """UserErrors for unknown trainable/sampler names and stage-2 settings that cannot work together."""
    from nbn_tutorial import data

    check_choice("sampler", config.sampler, list(data.SAMPLERS))
    check_choice("trainable", config.trainable, list(TRAINABLES))
    rule = TRAINABLE_REGISTRY.get(config.trainable)
    if rule.needs_init and not config.init_from:
        raise UserError(f"trainable={config.trainable} freezes most of the model, so it must start from a trained one: "
                        "set init_from to a stage-1 checkpoint (a run's last.pt)")
    if config.reinit_classifier and not config.init_from:
        raise UserError("reinit_classifier re-initialises the classifier of a stage-1 checkpoint; set init_from too")
    if config.init_from is not None and not str(config.init_from).strip():
        raise UserError("init_from is empty; give the path of a stage-1 checkpoint (a run's last.pt) or null")
    if config.expert_router != (config.trainable == "router"):
        raise UserError("RIDE's router trains in a stage of its own: set expert_router=true together with "
                        "trainable=router (and loss=ride-router, init_from a RIDE run's last.pt)")


def validate_model_outputs(config: Config) -> None:
    """The loss's required model outputs exist, and model options are only set for models that take them."""
    from nbn_tutorial import losses, models
    from nbn_tutorial.train.config import CONFIG_FIELDS

    spec = models.MODEL_REGISTRY.get(config.model)
    options = {key: getattr(config, key) for key in spec.options if key in CONFIG_FIELDS}
    if config.num_experts < 1:
        raise UserError(f"num_experts must be at least 1, got {config.num_experts}")
    for key, default in models.model_options().items():
        if key in CONFIG_FIELDS and key not in spec.options and getattr(config, key) != CONFIG_FIELDS[key].default:
            takers = [name for name in models.MODELS if key in models.MODEL_REGISTRY.get(name).options]
            raise UserError(f"{key} applies to {', '.join(takers)}, not to model {config.model!r}; leave it at "
                            f"{CONFIG_FIELDS[key].default!r}")
    needed = losses.LOSS_REGISTRY.get(config.loss).needs_outputs
    missing = [name for name in needed if name not in spec.outputs(options)]
    if missing:
        takers = [name for name in models.MODELS
                  if set(needed) <= set(models.MODEL_REGISTRY.get(name).outputs(options))]
        hint = f"; models that do: {', '.join(takers)}" if takers else ""
        raise UserError(f"loss {config.loss!r} needs a model that returns {' and '.join(missing)} while training, "
                        f"which model {config.model!r} with these settings does not{hint}")
