"""Options belong to their component: the typed option classes, the run config composed of them, the registries'
valid words and help texts, the dataset registry, and the renamed placement key (``nbn_where`` -> ``norm_where``),
still read wherever a config is read (presets, overrides, checkpoints on resume, study rows)."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY

from nbn_tutorial import data, losses, models, train
from nbn_tutorial import nn as nbn_nn
from nbn_tutorial.errors import UserError
from nbn_tutorial.options import option_fields
from nbn_tutorial.registry import Registry
from nbn_tutorial.study.runner import _same_config

PACKAGE = Path(__file__).resolve().parents[1] / "nbn_tutorial"
COMPONENT_OPTIONS = (nbn_nn.NormPlacement, nbn_nn.NBNOptions, nbn_nn.CBNOptions, models.RIDEOptions,
                     train.DualPathOptions, losses.LossOptions)


# ------------------------------------------------------------------ one typed place per component

@pytest.mark.parametrize("options", COMPONENT_OPTIONS, ids=lambda cls: cls.__name__)
def test_the_config_carries_each_component_options_class_under_its_keys(options):
    for name, field in option_fields(options).items():
        assert train.CONFIG_FIELDS[name] is field or train.CONFIG_FIELDS[name].metadata == field.metadata
        assert field.metadata["help"], name
    assert issubclass(train.Config, options)


def test_the_config_keys_keep_their_order_and_no_key_is_declared_twice():
    keys = list(train.CONFIG_FIELDS)
    assert keys[:3] == ["dataset", "data_root", "imbalance_factor"] and keys[-1] == "cpu_threads"
    assert keys.index("norm") < keys.index("norm_where") < keys.index("alpha_init") < keys.index("cbn_components")
    assert keys.index("loss") < keys.index("tau") < keys.index("init_from") < keys.index("seed")
    assert len(keys) == len(set(keys))


def test_each_norm_reads_only_its_own_options_from_a_config():
    config = train.load_config(None, ["norm=nbn", "alpha_init=unit-gamma", "nbn_normalize=weight",
                                      "cbn_components=3"])
    assert nbn_nn.norm_kwargs("nbn", config) == {"alpha_init": "unit-gamma", "normalize": "weight",
                                                 "share_alpha": True}
    assert nbn_nn.norm_kwargs("cbn", config) == {"components": 3, "shared_affine": False, "temperature": 1.0,
                                                 "init": "split"}
    assert nbn_nn.norm_kwargs("bn", config) == {}
    assert models.model_kwargs("ride_resnet32", config) == {"num_experts": 3, "expert_router": False}
    assert models.model_kwargs("resnet32", config) == {}


def test_a_config_builds_its_model_with_its_norm_options():
    config = train.load_config(None, [*TINY, "norm=nbn", "norm_where=all", "alpha_init=unit-gamma",
                                      "share_alpha=false"])
    model = train.build_model_for(config, train.build_datasets(config, ("train",))["train"])
    layers = nbn_nn.nbn_layers(model)
    assert len(layers) == len(nbn_nn.alpha_parameters(model)) > 10                      # all, one α each
    assert all(float(layer.alpha.detach()) == pytest.approx(layer.num_features ** 0.5) for _, layer in layers)


def test_every_loss_option_reaches_the_loss():
    config = train.load_config(None, [*TINY, "loss=ldam-drw", "head=cosine", "ldam_s=16", "ldam_max_m=0.3",
                                      "drw_epoch=7"])
    assert train.loss_options(config) == losses.LossOptions(ldam_s=16.0, ldam_max_m=0.3, drw_epoch=7)
    loss = train.build_loss_for_counts(config, [50, 10, 2])
    assert loss.scale == 16.0 and loss.weights_from_epoch == 7
    assert float(loss.margins.max()) == pytest.approx(0.3)
    with pytest.raises(UserError, match="unknown loss option 'ldam_z'; the losses take tau, "):
        losses.build_loss("ldam-drw", [5, 2], ldam_z=1.0)
    with pytest.raises(UserError, match="cb_beta must be in"):
        train.load_config(None, ["cb_beta=1.0"])


def test_a_norm_refuses_an_option_it_does_not_take():
    with pytest.raises(UserError, match="norm 'nbn' takes share_alpha, alpha_init, normalize, not 'components'"):
        models.build_model("resnet32", 10, norm="nbn", norm_kwargs={"components": 2})
    with pytest.raises(UserError, match="norm 'bn' takes no options, not 'alpha_init'"):
        models.build_model("resnet32", 10, norm="bn", norm_kwargs={"alpha_init": 2.0})


# ------------------------------------------------------------------ registries give the valid words and help

@pytest.mark.parametrize("key, registry", [("dataset", data.DATASETS), ("model", models.MODEL_REGISTRY),
                                           ("norm", nbn_nn.NORM_REGISTRY), ("head", nbn_nn.HEAD_REGISTRY),
                                           ("loss", losses.LOSS_REGISTRY), ("sampler", data.SAMPLER_REGISTRY),
                                           ("trainable", train.TRAINABLE_REGISTRY),
                                           ("norm_where", nbn_nn.PLACEMENT_REGISTRY)])
def test_registries_give_the_valid_words_and_the_help_text(key, registry):
    assert isinstance(registry, Registry)
    assert train.field_choices(key) == registry.names()
    assert train.field_help(key).endswith(f"(one of: {', '.join(registry.names())})")


def test_a_name_registered_later_is_valid_in_a_config(monkeypatch):
    spec = losses.LOSS_REGISTRY.get("ce")
    monkeypatch.setattr(losses.LOSS_REGISTRY, "_entries", {**dict(losses.LOSS_REGISTRY.items()), "my-ce": spec})
    assert "my-ce" in train.field_help("loss")
    assert train.load_config(None, ["loss=my-ce"]).loss == "my-ce"


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(UserError, match=re.escape(f"unknown loss 'fcal' (did you mean 'focal'?); valid: "
                                                  f"{', '.join(losses.LOSSES)}") + "$"):
        train.load_config(None, ["loss=fcal"])
    with pytest.raises(UserError, match=re.escape(f"unknown dataset 'cifar-10-lt' (did you mean 'cifar10-lt'?); "
                                                  f"valid: {', '.join(data.DATASETS)}") + "$"):
        data.get_spec("cifar-10-lt")


def test_datasets_are_a_registry_like_every_other_choice():
    assert isinstance(data.DATASETS, Registry) and data.DATASETS.kind == "dataset"
    assert data.DATASETS["digits-lt"] is data.DATASETS.get("digits-lt") is data.get_spec("digits-lt")
    assert [name for name, _ in data.DATASETS.items()] == list(data.DATASETS) == list(data.DATASETS.names())


def _dataset_modules() -> set[str]:
    """The modules that define datasets: the registry and each dataset's source."""
    return {"data/specs.py", "data/tensor_sources.py", "data/imagefolder.py", "data/files.py"}


def test_no_dataset_is_special_cased_by_name_outside_its_own_module():
    names = set(data.DATASETS)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in _dataset_modules():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            compared = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            compared += [element for part in compared if isinstance(part, (ast.Tuple, ast.List, ast.Set))
                         for element in part.elts]
            if isinstance(node, (ast.For, ast.comprehension)):
                compared += getattr(node.iter, "elts", [])
            found += [f"{relative}:{node.lineno}" for part in compared
                      if isinstance(part, ast.Constant) and part.value in names]
    assert found == []


# ------------------------------------------------------------------ nbn_where is now norm_where

def test_the_old_placement_key_is_read_with_a_note(capsys, monkeypatch):
    monkeypatch.setattr("nbn_tutorial.train.coercion._noted", set())
    config = train.config_from_dict({"norm": "nbn", "nbn_where": "last-stage"}, "an old config")
    assert config.norm_where == "last-stage" and "nbn_where" not in train.config_to_dict(config)
    note = capsys.readouterr().err
    assert "note: config key 'nbn_where' (in an old config) is now called 'norm_where'" in note
    assert train.load_config(None, ["norm=cbn", "nbn_where=all"]).norm_where == "all"
    assert capsys.readouterr().err == ""                                   # one note per process
    with pytest.raises(UserError, match="sets both 'nbn_where' and 'norm_where' .* to different values"):
        train.config_from_dict({"nbn_where": "all", "norm_where": "official"}, "a config")
    assert train.config_from_dict({"nbn_where": "all", "norm_where": "all"}, "a config").norm_where == "all"


def test_no_preset_or_study_file_uses_the_old_key():
    for folder in ("configs", "studies"):
        for path in (PACKAGE.parent / folder).glob("*.yaml"):
            assert not re.search(r"^\s*[^#]*\bnbn_where\s*:", path.read_text(), re.MULTILINE), path


def test_a_study_row_recorded_with_the_old_key_still_matches_its_planned_run():
    planned = {**train.config_to_dict(train.load_config("quick_digits_nbn")), "norm_where": "last-stage"}
    recorded = {key if key != "norm_where" else "nbn_where": value for key, value in planned.items()}
    assert _same_config(recorded, planned)
    assert not _same_config({**recorded, "nbn_where": "all"}, planned)


def test_a_checkpoint_written_with_the_old_key_resumes(tmp_path):
    config = train.load_config(None, [*TINY, "norm=nbn", "norm_where=last-stage", "epochs=2", "stop_after_epochs=1"])
    run = train.train(config, tmp_path / "run", progress=False)
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            state = torch.load(run / name, weights_only=True)
            state["config"] = {("nbn_where" if key == "norm_where" else key): value
                               for key, value in state["config"].items()}
            torch.save(state, run / name)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("norm_where:", "nbn_where:"))
    resumed = train.train(dataclasses.replace(config, stop_after_epochs=None), run, resume=True, progress=False)
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert train.load_run(resumed)[1].norm_where == "last-stage"


def test_build_models_old_keywords_build_the_same_model():
    build_model = models.build_model
    torch.manual_seed(0)
    new = build_model("resnet32", 4, norm="nbn", norm_where="all",
                      norm_kwargs={"alpha_init": "unit-gamma", "share_alpha": False, "normalize": "weight"})
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="nbn_where, alpha_init, share_alpha, nbn_normalize"):
        old = build_model("resnet32", 4, norm="nbn", nbn_where="all", alpha_init="unit-gamma", share_alpha=False,
                          nbn_normalize="weight")
    assert new.state_dict().keys() == old.state_dict().keys()
    assert all(torch.equal(tensor, old.state_dict()[name]) for name, tensor in new.state_dict().items())
    with pytest.warns(DeprecationWarning, match="norm_options"):
        cbn = build_model("resnet32", 4, norm="cbn", norm_options={"components": 3})
    assert [layer.num_components for layer in cbn.modules() if hasattr(layer, "num_components")][:1] == [3]
