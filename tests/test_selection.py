"""Selection honesty: best.pt comes from a val split, or does not exist; choosing on test is opt-in and said."""

import numpy as np
import pytest
from cli_tools import run_cli
from PIL import Image
import tiny_runs

from nbn_tutorial import train
from nbn_tutorial.errors import UserError

TINY = [*tiny_runs.TINY, "epochs=2"]


def test_without_a_val_split_no_best_checkpoint_is_chosen(tmp_path):
    run = train.train(train.load_config(None, [*TINY, "val_per_class=0"]), tmp_path / "auto", progress=False)
    assert (run / "last.pt").exists() and not (run / "best.pt").exists()
    with pytest.raises(UserError, match="no best.pt"):
        train.load_run(run, which="best")
    model, _ = train.load_run(run)  # last.pt by default
    assert not model.training


def test_selecting_on_test_is_opt_in_and_says_so(tmp_path):
    run = train.train(train.load_config(None, [*TINY, "select_best_on=test"]), tmp_path / "test", progress=False)
    assert (run / "best.pt").exists()
    state = train.read_checkpoint(run / "best.pt")
    assert state["best"]["split"] == "test" and state["role"] == "best"
    assert train.evaluate_checkpoint(run / "best.pt", device="cpu")["selected_on"] == "test"
    assert train.evaluate_checkpoint(run / "last.pt", device="cpu")["selected_on"] is None
    result = run_cli("evaluate", "--checkpoint", str(run / "best.pt"))
    assert result.returncode == 0 and "selected on the test split" in result.stdout


def test_val_selection_on_a_dataset_without_val_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no val split"):
        train.train(train.load_config(None, [*TINY, "select_best_on=val", "val_per_class=0"]), tmp_path / "val",
                    progress=False)


def _tree(root, splits=("train", "val", "test"), classes=3, per_class=(12, 4, 4)):
    rng = np.random.default_rng(0)
    for split, count in zip(splits, per_class):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
                pixels[..., label] = 255  # a learnable colour cue per class
                Image.fromarray(pixels).save(folder / f"{index}.jpg")
    return root


def test_an_imagefolder_tree_with_its_own_val_split_selects_on_val(tmp_path):
    tree = _tree(tmp_path / "tree")
    config = train.load_config(None, [*TINY, "dataset=imagefolder-lt", f"data_root={tree}", "imbalance_factor=2",
                                       "image_size=16", "num_workers=0", "batch_size=8"])
    run = train.train(config, tmp_path / "run", progress=False)
    rows = train.read_metrics(run)
    assert rows["val_balanced_acc"].notna().all()
    state = train.read_checkpoint(run / "best.pt")
    assert state["best"]["split"] == "val"
    assert state["best"]["value"] == rows["val_balanced_acc"].max()


def test_a_val_split_that_is_the_test_split_does_not_count(tmp_path):
    tree = _tree(tmp_path / "tree", splits=("train", "val"), per_class=(12, 4))
    config = train.load_config(None, [*TINY, "dataset=imagefolder-lt", f"data_root={tree}", "imbalance_factor=2",
                                       "image_size=16", "num_workers=0", "batch_size=8"])
    assert train.selection_split(config) is None
