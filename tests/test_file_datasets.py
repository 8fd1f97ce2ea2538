"""File-based datasets end to end (issue 10), on generated trees in the real on-disk formats.

Trees come from ``tests/image_trees.py``: ImageFolder trees of tiny JPEGs, and an ImageNet-LT-shaped
folder (JPEGs plus ``ImageNet_LT_{train,val,test}.txt`` in the OLTR ``relative/path label`` format).

The ``sequence`` test runs notebooks 01-05 once on such a tree (16-pixel inputs, 6 classes, 1 epoch), and 01
again on the same tree read as an ImageFolder; it takes about a minute. Everything else here takes seconds.
"""
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from image_trees import corrupt, write_image, write_image_folder, write_oltr_tree
from cli_tools import error_line, run_cli

from nbn_tutorial import data, diagnosis, plots, train
from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = ["01", "02", "03", "04", "05"]


def tiny_preset(folder: Path, norm: str, dataset: str, **fields) -> Path:
    """The imagefolder preset made tiny (16-pixel inputs, 1 epoch) for another dataset, as a YAML file."""
    values = yaml.safe_load((ROOT / "configs" / f"imagefolder-lt_resnet32_{norm}.yaml").read_text())
    values.update(dataset=dataset, image_size=16, epochs=1, warmup_epochs=1, device="cpu", num_workers=0, **fields)
    if dataset != "imagefolder-lt":
        values.update(imbalance_factor=None, profile=None)
    path = folder / f"tiny_{dataset}_{norm}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def run_sequence_on(tmp_path: Path, dataset: str, data_root: Path, only: list[str] = SEQUENCE,
                    imbalance_factor: float | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    presets = [tiny_preset(tmp_path, norm, dataset) for norm in ("bn", "nbn")]
    params = {"config": str(presets[0]), "dataset": dataset, "imbalance_factor": imbalance_factor, "epochs": 1,
              "seed": 0, "device": "cpu", "data_root": str(data_root), "configs": [str(p) for p in presets], "seeds": [0],
              "train_here": True}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    return runner.run_sequence(params_file=params_file, out_dir=tmp_path / "out", only=only, progress=False)


# ---------------------------------------------------------------------------------------------------
# The notebook sequence on file datasets (about two minutes each)
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def file_tree(tmp_path_factory) -> Path:
    """One ImageNet-LT-shaped tree for the notebook runs: OLTR list files over train/ and val/ class folders, so
    the same images also read as an ImageFolder tree with its own splits (<root>/ImageNet_LT)."""
    folder = tmp_path_factory.mktemp("file_tree")
    write_oltr_tree(folder / "data", [120, 60, 30, 12, 6, 3], held_out_per_class=4)
    return folder / "data"


@pytest.mark.sequence
def test_sequence_01_to_05_runs_once_on_a_file_tree_read_through_its_list_files_and_01_as_an_imagefolder(
        file_tree, tmp_path):
    """The sequence runs once, on the list files (imagenet-lt); notebook 01, where reading an ImageFolder tree
    differs (its class folders walked, its samples figure), runs again on the same tree read as an ImageFolder.
    Merged from two tests that each ran 01-05 on its own tree; every assertion of both is kept."""
    out = run_sequence_on(tmp_path / "lists", "imagenet-lt", file_tree)
    results = runner.read_results(out / "run")
    assert set(results) == {"bn", "nbn"} and all(np.isfinite(v["overall"]) for v in results.values())
    seeds = (out / "run" / f"{runner.SEED_TABLE}.md").read_text()
    assert "imagenet-lt" in seeds
    assert runner.build_report(out).is_file()

    folder_out = run_sequence_on(tmp_path / "folder", "imagefolder-lt", file_tree / "ImageNet_LT", only=["01"],
                                 imbalance_factor=1.0)   # the tree is long-tailed already
    assert (folder_out / "run" / "figures" / "class_samples.png").is_file()   # notebook 01's cell that failed before
    assert (out / "run" / "figures" / "class_samples.png").is_file()


# ---------------------------------------------------------------------------------------------------
# Input size, shot rule, class samples, the preset
# ---------------------------------------------------------------------------------------------------

def test_image_size_sets_the_input_of_file_datasets_only(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [10] * 3)
    small = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2, image_size=16)
    assert small[0][0].shape == (3, 16, 16)
    assert data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2)[0][0].shape == (3, 224, 224)
    with pytest.raises(UserError, match="image_size applies to file datasets only"):
        train.load_config(None, ["dataset=digits-lt", "image_size=16"])
    with pytest.raises(UserError, match="image_size must be a whole number >= 1"):
        data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2, image_size=0)


def test_auto_shot_rule_gives_a_small_tree_three_groups_and_a_large_one_the_absolute_rule(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [20] * 6)
    train_split = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=8, image_size=16)
    assert train_split.shot_rule == "rank" and all(len(group) == 2 for group in train_split.shot_groups.values())
    # no class has > 100 images: under the absolute rule 'many' is empty, which stopped notebook 03
    absolute = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=8, image_size=16,
                                  shot_rule="absolute")
    assert len(absolute.shot_groups["many"]) == 0
    test = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=8, image_size=16, split="test")
    examples = diagnosis.pick_head_tail_examples(test, n=2)
    assert list(examples.rows) == ["head", "head", "tail", "tail"]
    assert data.resolve_shot_rule("auto", [500, 150, 60, 30, 10, 5]) == "absolute"
    assert data.resolve_shot_rule("auto", [90, 60, 30, 10]) == "rank"
    assert data.resolve_shot_rule("absolute", [90, 60, 30, 10]) == "absolute"
    with pytest.raises(UserError, match="shot_rule 'thirds'; valid: auto, absolute, rank"):
        train.load_config(None, ["shot_rule=thirds"])


def test_shot_rule_option_reaches_the_training_split_and_the_stats(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [15] * 4)
    config = train.load_config("imagefolder-lt_resnet32_bn", [f"data_root={tree}", "shot_rule=rank"])
    assert train.build_datasets(config, ("train",))["train"].shot_rule == "rank"
    text = data.format_dataset_stats("imagefolder-lt", root=tree, imbalance_factor=4)
    assert "shot groups (rank rule, chosen by auto for this size)" in text
    assert "data check imagefolder-lt" in text   # stats never open an image, and say how to


def test_class_samples_figure_shows_images_of_a_files_dataset(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [8] * 3)
    split = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4)
    figure = plots.plot_class_samples(split, per_class=3)
    shown = [image for ax in figure.axes for image in ax.get_images()]
    assert len(shown) == sum(min(3, count) for count in split.class_counts)
    assert shown[0].get_array().shape[:2] == (20, 24)   # the file's pixels (20x24), not a 224 crop


def test_the_imagefolder_presets_load_and_differ_only_in_norm():
    bn, nbn = (train.load_config(f"imagefolder-lt_resnet32_{norm}") for norm in ("bn", "nbn"))
    assert bn.dataset == "imagefolder-lt" and bn.image_size == 64 and bn.shot_rule == "auto"
    differing = {key for key, value in train.config_to_dict(bn).items() if train.config_to_dict(nbn)[key] != value}
    assert differing == {"norm"}


# ---------------------------------------------------------------------------------------------------
# data check, corrupt images in training, evaluation and the cache
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def damaged_tree(tmp_path) -> Path:
    tree = write_image_folder(tmp_path / "tree", [12] * 3)
    corrupt(tree / "class0" / "3.jpg", "truncated")
    corrupt(tree / "class1" / "4.jpg", "empty")
    corrupt(tree / "class2" / "5.jpg", "text")
    return tree


def test_data_check_lists_every_unreadable_image(damaged_tree):
    result = data.check_dataset("imagefolder-lt", root=damaged_tree, workers=2)
    assert result.checked == 36 and result.workers == 2
    assert sorted(Path(path).relative_to(damaged_tree).as_posix() for path, _ in result.bad) == [
        "class0/3.jpg", "class1/4.jpg", "class2/5.jpg"]
    assert data.check_dataset("imagefolder-lt", root=damaged_tree, workers=1).bad == result.bad
    cli = run_cli("data", "check", "imagefolder-lt", "--data-root", str(damaged_tree))
    assert "3 of 36 images of imagefolder-lt cannot be read" in error_line(cli)
    assert cli.stdout.count(str(damaged_tree)) >= 3 and "truncated" in cli.stdout.lower()


def test_data_check_of_a_clean_list_dataset_and_of_a_tensor_dataset(tmp_path):
    write_oltr_tree(tmp_path, [6, 3, 1], held_out_per_class=2)
    result = run_cli("data", "check", "imagenet-lt", "--data-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "opened 22 images" in result.stdout and "all readable" in result.stdout
    with pytest.raises(UserError, match="no image files to check"):
        data.check_dataset("digits-lt")


def test_a_corrupt_image_in_a_worker_stops_training_with_one_sentence(damaged_tree, tmp_path):
    args = ["train", "--config", "imagefolder-lt_resnet32_bn", "--data-root", str(damaged_tree), "--set",
            "imbalance_factor=2", "--set", "image_size=16", "--set", "epochs=1", "--set", "device=cpu",
            "--set", "num_workers=2", "--no-progress"]
    bad = ("class0/3.jpg", "class1/4.jpg", "class2/5.jpg")
    line = error_line(run_cli(*args, "--out", str(tmp_path / "run")))   # read by a DataLoader worker process
    assert any(name in line for name in bad) and "cannot be read" in line and "skip_bad_images" in line
    skipping = run_cli(*args, "--set", "skip_bad_images=true", "--out", str(tmp_path / "run"))
    assert skipping.returncode == 0, skipping.stderr
    listed = (tmp_path / "run" / "skipped_images.txt").read_text().split()
    assert listed and all(path.endswith(bad) for path in listed)
    assert "skipped" in skipping.stderr and "skipped_images.txt" in skipping.stderr


def test_a_corrupt_test_image_stops_evaluation_unless_skipped(tmp_path):
    root = write_oltr_tree(tmp_path / "data", [8, 4, 2], held_out_per_class=2)
    run = tmp_path / "run"
    trained = run_cli("train", "--config", str(tiny_preset(tmp_path, "bn", "imagenet-lt")), "--data-root",
                      str(tmp_path / "data"), "--out", str(run), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    test_list = (root / "ImageNet_LT_test.txt").read_text().split()
    corrupt(root / test_list[0], "truncated")
    line = error_line(run_cli("evaluate", "--checkpoint", str(run / "last.pt"), "--device", "cpu"))
    assert test_list[0] in line and "ImageNet_LT_test.txt" in line and "--skip-bad-images" in line
    skipped = run_cli("evaluate", "--checkpoint", str(run / "last.pt"), "--device", "cpu", "--skip-bad-images")
    assert skipped.returncode == 0 and "1 unreadable image was left out" in skipped.stdout


def test_data_cache_names_unreadable_images_and_refuses_another_size(tmp_path):
    root = write_oltr_tree(tmp_path / "data", [6, 3, 1], held_out_per_class=2)
    corrupt(root / "train" / "n00000001" / "n00000001_0.JPEG", "text")
    out = tmp_path / "cache"
    args = ["data", "cache", "imagenet-lt", "--data-root", str(tmp_path / "data"), "--out", str(out)]
    line = error_line(run_cli(*args, "--short-side", "8", "--workers", "2"))
    assert "1 of 22 images cannot be read (first: " in line and "n00000001_0.JPEG" in line
    assert len(list((out / "ImageNet_LT").rglob("*.JPEG"))) == 21   # the readable ones are cached
    assert "short side 8" in error_line(run_cli(*args, "--short-side", "16"))
    assert "--workers must be a whole number >= 1, got -2" in error_line(run_cli(*args, "--workers", "-2"))
    write_image(root / "train" / "n00000001" / "n00000001_0.JPEG", 1, 0)
    assert run_cli(*args, "--short-side", "8").returncode == 0   # completes only what is missing


# ---------------------------------------------------------------------------------------------------
# ImageFolder trees: wrong roots, mismatched splits, a changed tree, read-only trees
# ---------------------------------------------------------------------------------------------------

def test_a_data_root_one_level_too_high_is_refused(tmp_path):
    write_image_folder(tmp_path / "photos" / "flowers", [6] * 3)
    with pytest.raises(UserError) as caught:
        data.build_dataset("imagefolder-lt", root=tmp_path / "photos", imbalance_factor=2)
    message = str(caught.value)
    assert "single class folder ('flowers')" in message and "at least 2 classes" in message
    assert str(tmp_path / "photos" / "flowers") in message


def test_classes_that_differ_between_splits_are_named(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [6, 6, 6], part="train")
    write_image_folder(tree, [2, 2, 2, 2], part="val")
    with pytest.raises(UserError, match=r"only in val/: class3"):
        data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2)
    write_image_folder(tree, [0, 0, 0, 6], part="train")
    for image in (tree / "val" / "class2").iterdir():   # a class without test images ("test 0" before)
        image.unlink()
    with pytest.raises(UserError, match="class 'class2' of .* has no val/ image"):
        data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2)
    write_image_folder(tree, [0, 0, 2], part="val")
    assert data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2, split="test").class_counts.tolist() \
        == [2, 2, 2, 2]


def test_adding_an_image_to_the_tree_keeps_its_checkpoints_usable(tmp_path, capsys):
    tree = write_image_folder(tmp_path / "tree", [10] * 3)
    config = train.load_config(tiny_preset(tmp_path, "bn", "imagefolder-lt"), [f"data_root={tree}",
                                                                              "imbalance_factor=2"])
    run = train.train(config, tmp_path / "run", progress=False)
    before = train.evaluate_checkpoint(run / "last.pt", device="cpu")
    write_image(tree / "class1" / "new.jpg", 1, 99)
    after = train.evaluate_checkpoint(run / "last.pt", device="cpu")
    assert after["per_class_acc"] == before["per_class_acc"]
    assert "no longer gives the split held by its list files" in capsys.readouterr().err


def test_a_read_only_tree_writes_its_lists_to_the_user_cache(tmp_path, monkeypatch):
    # As root, chmod cannot make a folder unwritable, so os.access (what the package asks) is patched here;
    # the CLI test below blocks <tree>/lt_lists for real.
    tree = write_image_folder(tmp_path / "tree", [6] * 3)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tree else real_access(path, mode))
    split = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2)
    assert split.list_file.parent == data.user_list_dir(tree)
    assert data.user_list_dir(tree).is_relative_to(tmp_path / "cache") and not (tree / data.LIST_FOLDER).exists()
    monkeypatch.setattr(os, "access", real_access)   # writable again: the lists already written are found again
    assert data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=2).list_file == split.list_file


def test_lists_go_elsewhere_when_the_tree_cannot_hold_them(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [6] * 3)
    (tree / data.LIST_FOLDER).write_text("a file where the list folder would go\n")
    common = ["train", "--config", str(tiny_preset(tmp_path, "bn", "imagefolder-lt")), "--data-root", str(tree),
              "--set", "imbalance_factor=2", "--no-progress"]
    result = run_cli(*common, "--out", str(tmp_path / "run1"), env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "cannot be written" in result.stderr and str(tmp_path / "cache") in result.stderr
    result = run_cli(*common, "--list-dir", str(tmp_path / "mylists"), "--out", str(tmp_path / "run2"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "mylists").iterdir()) == ["tree_IF2_exp_seed0_test.txt",
                                                                       "tree_IF2_exp_seed0_train.txt"]
    stored = yaml.safe_load((tmp_path / "run2" / "config.yaml").read_text())
    assert stored["list_dir"] == str(tmp_path / "mylists") and stored["data_root"] == str(tree)
