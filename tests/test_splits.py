"""Which examples a run trains on, chooses its schedule and kept weights with, and reports on:
three disjoint sets, the report never seen in training or selection."""

import pytest

import user_trees
from vgg_keras.data import info, run_splits


def filenames(dataset):
    return {example["filename"].decode() for example in dataset.as_numpy_iterator()}


def assert_disjoint(splits):
    names = {role: filenames(getattr(splits, role)) for role in ("train", "selection", "report")}
    assert all(names.values()), names
    assert not names["train"] & names["selection"]
    assert not names["train"] & names["report"]
    assert not names["selection"] & names["report"]
    return names


def test_plain_class_folders_hold_out_selection_and_report_from_train(tmp_path):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=20, salt=False)
    splits = run_splits(tree["root"], val_fraction=0.1)
    assert splits.names == {"train": "train[20%:]", "selection": "train[:10%]",
                            "report": "train[10%:20%]"}
    names = assert_disjoint(splits)
    assert sum(len(n) for n in names.values()) == tree["num_images"] == 60
    assert 3 <= len(names["selection"]) <= 10 and 3 <= len(names["report"]) <= 10
    assert info(splits.report).num_examples == len(names["report"])


def test_a_moved_dataset_keeps_its_split(tmp_path):
    """The slice order hashes each file's path inside the dataset, not where the dataset lives:
    a copy on another disk (or a resumed run on another machine) selects the same files."""
    import shutil

    tree = user_trees.class_folders(tmp_path / "here" / "pets", per_class=20, salt=False)
    moved = tmp_path / "elsewhere" / "deeper" / "pets_copy"
    shutil.copytree(tree["root"], moved)
    here = filenames(run_splits(tree["root"], val_fraction=0.1).selection)
    there = filenames(run_splits(str(moved), val_fraction=0.1).selection)
    assert len(here) == 6 and here == there


def test_train_and_val_folders_report_on_val_and_select_on_held_out_train(tmp_path):
    tree = user_trees.class_folders(tmp_path / "split", per_class=20, split_dirs=True, salt=False)
    splits = run_splits(tree["root"], val_fraction=0.1)
    assert splits.names == {"train": "train[10%:]", "selection": "train[:10%]",
                            "report": "validation"}
    names = assert_disjoint(splits)
    assert all(name.startswith("val") for name in names["report"])
    assert len(names["report"]) == sum(tree["counts"]["validation"].values())
    assert not any(name.startswith("val") for name in names["train"] | names["selection"])


def test_a_third_split_is_the_report_and_validation_the_selection(tfds_dir):
    splits = run_splits("vgg_shapes/small", val_fraction=0.05)
    assert splits.names == {"train": "train", "selection": "validation", "report": "test"}
    assert (info(splits.train).num_examples, info(splits.selection).num_examples,
            info(splits.report).num_examples) == (1000, 200, 200)


def test_a_chosen_report_split_is_never_the_selection(tfds_dir):
    splits = run_splits("vgg_shapes/small", val_fraction=0.05, report="validation")
    assert splits.names == {"train": "train[5%:]", "selection": "train[:5%]",
                            "report": "validation"}
    assert_disjoint(splits)
    splits = run_splits("vgg_shapes/small", val_fraction=0.05, report="test[:50%]")
    assert splits.names["selection"] == "validation"


def test_a_val_fraction_that_leaves_no_training_data_is_refused(tmp_path):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    with pytest.raises(ValueError, match="--val-fraction 0.5"):
        run_splits(tree["root"], val_fraction=0.5)
