"""Data identity (issue 19): checkpoints know their classes and training set, labels stay in range, and an
ImageFolder tree is walked without loops, double counts or names that are not UTF-8.

Trees are generated in the real on-disk formats (``tests/image_trees.py``); training runs take 16-pixel
inputs for one epoch.
"""
import os
from pathlib import Path

import pytest
import torch
import yaml
from cli_tools import error_line, run_cli
from image_trees import write_image, write_image_folder, write_oltr_tree

from nbn_tutorial import data, train
from nbn_tutorial.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("ant", "bee", "cat", "dog", "eel")


def tree_preset(folder: Path, **fields) -> Path:
    """The imagefolder-lt BN preset made tiny (16-pixel inputs, 1 epoch, CPU, no worker processes)."""
    values = yaml.safe_load((ROOT / "configs" / "imagefolder-lt_resnet32_bn.yaml").read_text())
    values.update(image_size=16, epochs=1, warmup_epochs=1, device="cpu", num_workers=0, imbalance_factor=2,
                  **fields)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def named_tree(root: Path, names, per_class: int = 10) -> Path:
    """An ImageFolder tree with one folder of ``per_class`` JPEGs for each name."""
    for label, name in enumerate(names):
        for index in range(per_class):
            write_image(root / name / f"{name}_{index:03d}.jpg", label, index)
    return root


def train_tree(tree: Path, out: Path, preset: Path) -> Path:
    result = run_cli("train", "--config", str(preset), "--data-root", str(tree), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the tree, a finished 1-epoch run on it, the preset) on ant/bee/cat/dog/eel."""
    folder = tmp_path_factory.mktemp("identity")
    tree = named_tree(folder / "tree", CLASSES)
    preset = tree_preset(folder)
    return tree, train_tree(tree, folder / "run", preset), preset


# ---------------------------------------------------------------------------------------------------
# Checkpoints record their data; evaluation and stage 2 check it
# ---------------------------------------------------------------------------------------------------

def test_a_checkpoint_records_its_class_names_and_training_set(trained):
    _, run, _ = trained
    recorded = torch.load(run / "last.pt", weights_only=True)["data"]
    assert recorded["classes"] == list(CLASSES) and len(recorded["train_fingerprint"]) == 12


def test_evaluating_on_a_tree_whose_classes_differ_is_refused_unless_allowed(trained, tmp_path):
    _, run, _ = trained
    other = named_tree(tmp_path / "other", ("dog", "eel", "fox", "gnu", "hen"))
    args = ["evaluate", "--checkpoint", str(run / "last.pt"), "--device", "cpu", "--data-root", str(other)]
    line = error_line(run_cli(*args))
    assert "was trained on other classes (its class 0 is 'ant', this data's class 0 is 'dog')" in line
    assert "--allow-other-data" in line
    allowed = run_cli(*args, "--allow-other-data")
    assert allowed.returncode == 0 and "overall" in allowed.stdout, allowed.stderr
    fewer = named_tree(tmp_path / "fewer", CLASSES[:4])
    assert "(5 classes, this data 4)" in error_line(run_cli("evaluate", "--checkpoint", str(run / "last.pt"),
                                                            "--device", "cpu", "--data-root", str(fewer)))


def test_stage2_refuses_another_training_set_unless_allowed(trained, tmp_path):
    tree, run, preset = trained
    changed = named_tree(tmp_path / "tree", CLASSES, per_class=12)   # same classes, other images
    stage2 = ["--set", f"init_from={run / 'last.pt'}", "--set", "trainable=classifier", "--data-root", str(changed)]
    args = ["train", "--config", str(preset), *stage2, "--no-progress"]
    line = error_line(run_cli(*args, "--out", str(tmp_path / "crt")))
    assert "was trained on another training set" in line and "allow_other_data=true" in line
    assert not (tmp_path / "crt").exists()
    allowed = run_cli(*args, "--set", "allow_other_data=true", "--out", str(tmp_path / "crt"))
    assert allowed.returncode == 0, allowed.stderr
    same = run_cli("train", "--config", str(preset), "--set", f"init_from={run / 'last.pt'}", "--set",
                   "trainable=classifier", "--data-root", str(tree), "--out", str(tmp_path / "same"), "--no-progress")
    assert same.returncode == 0, same.stderr


def test_resuming_on_another_training_set_is_refused(tmp_path):
    tree = named_tree(tmp_path / "tree", CLASSES[:3], per_class=8)
    args = ["train", "--config", str(tree_preset(tmp_path)), "--data-root", str(tree), "--set", "epochs=2",
            "--out", str(tmp_path / "run"), "--no-progress"]
    first = run_cli(*args, "--set", "stop_after_epochs=1")
    assert first.returncode == 0, first.stderr
    (train_list,) = (tree / data.LIST_FOLDER).glob("*_train.txt")
    train_list.write_text("".join(train_list.read_text().splitlines(keepends=True)[:-1]))   # one image fewer
    line = error_line(run_cli(*args, "--resume"))
    assert "was trained on another training set" in line and "resume it on the data it started on" in line
    assert list(train.read_metrics(tmp_path / "run").epoch) == [1]


# ---------------------------------------------------------------------------------------------------
# List files: labels in range, an empty train list
# ---------------------------------------------------------------------------------------------------

def test_an_out_of_range_label_is_refused_with_its_file_and_line(tmp_path):
    root = write_oltr_tree(tmp_path / "data", [6, 4, 3, 2], held_out_per_class=1)
    train_list = root / "ImageNet_LT_train.txt"
    lines = train_list.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0] + " 5000"
    train_list.write_text("\n".join(lines) + "\n")
    line = error_line(run_cli("data", "stats", "imagenet-lt", "--data-root", str(tmp_path / "data")))
    assert f"{train_list}:4:" in line and "the label is outside 0..999" in line
    with pytest.raises(UserError, match=rf"{train_list}:4: .*outside 0\.\.999"):
        data.build_dataset("imagenet-lt", root=tmp_path / "data")
    lines[3] = lines[3].rsplit(" ", 1)[0] + " 7"   # in range for ImageNet-LT, but classes 4..6 get no image
    train_list.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=rf"{train_list}:4: .*label 7 leaves class 4 without any training image"):
        data.build_dataset("imagenet-lt", root=tmp_path / "data")
    test_list = root / "ImageNet_LT_test.txt"
    train_list.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    test_list.write_text(test_list.read_text() + "val/x.JPEG 9\n")
    line = error_line(run_cli("data", "stats", "imagenet-lt", "--data-root", str(tmp_path / "data")))
    assert f"{test_list}:5:" in line and "outside 0..3, the classes of the train list" in line


def test_an_empty_train_list_is_called_empty(tmp_path):
    root = write_oltr_tree(tmp_path / "data", [3, 2], held_out_per_class=1)
    (root / "ImageNet_LT_train.txt").write_text("")
    line = error_line(run_cli("data", "stats", "imagenet-lt", "--data-root", str(tmp_path / "data")))
    assert "ImageNet_LT_train.txt is empty; it must list the training images" in line and "0 classes" not in line


# ---------------------------------------------------------------------------------------------------
# Walking an ImageFolder tree
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("link, target", [("ant/up", ".."), ("bee/self", ".")])
def test_a_symlink_loop_in_a_tree_is_refused(tmp_path, link, target):
    tree = named_tree(tmp_path / "tree", CLASSES[:3], per_class=6)
    os.symlink(target, tree / link)
    for args in (["data", "stats", "imagefolder-lt"], ["data", "check", "imagefolder-lt"]):
        line = error_line(run_cli(*args, "--data-root", str(tree)))
        assert f"the symbolic link '{link}'" in line and "loop" in line and "remove that link" in line
    line = error_line(run_cli("train", "--config", str(tree_preset(tmp_path)), "--data-root", str(tree), "--out",
                              str(tmp_path / "run"), "--no-progress"))
    assert f"the symbolic link '{link}'" in line and not (tmp_path / "run").exists()
    assert not (tree / "lt_lists").exists()


def test_a_file_reached_twice_is_refused_and_links_out_of_the_tree_are_followed(tmp_path):
    store = named_tree(tmp_path / "store", CLASSES[:3], per_class=6)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in CLASSES[:3]:
        os.symlink(store / name, tree / name)   # a tree of links into a shared store is fine
    assert data.check_dataset("imagefolder-lt", root=tree).checked == 18
    os.symlink(store / "bee", store / "ant" / "more")   # bee's images would also be labelled ant
    with pytest.raises(UserError, match=r"'bee/bee_000.jpg' .* is the same file as 'ant/more/bee_000.jpg'.*twice"):
        data.check_dataset("imagefolder-lt", root=tree)


def test_names_that_are_not_utf8_are_refused(tmp_path):
    tree = named_tree(tmp_path / "tree", CLASSES[:2], per_class=6)
    bad_file = os.fsencode(str(tree / "ant")) + b"/caf\xe9.jpg"
    with open(bad_file, "wb") as handle:
        handle.write((tree / "ant" / "ant_000.jpg").read_bytes())
    line = error_line(run_cli("data", "stats", "imagefolder-lt", "--data-root", str(tree)))
    assert "is not valid UTF-8 text" in line and "caf\\xe9.jpg" in line
    os.remove(bad_file)
    os.rename(os.fsencode(str(tree / "bee")), os.fsencode(str(tree)) + b"/b\xe9e")
    line = error_line(run_cli("data", "stats", "imagefolder-lt", "--data-root", str(tree)))
    assert "the class folder" in line and "b\\xe9e" in line


def test_a_class_without_images_is_named_without_a_double_space(tmp_path):
    tree = write_image_folder(tmp_path / "tree", [5, 5])
    (tree / "class2").mkdir()
    line = error_line(run_cli("data", "stats", "imagefolder-lt", "--data-root", str(tree)))
    assert "has no image;" in line and "  " not in line
