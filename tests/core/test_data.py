"""load_table: every source the batch runner and the tasks read, DatasetDict splits included."""

from __future__ import annotations

import datasets
import pytest

from spri_dspy.core.data import load_table


@pytest.fixture
def splits():
    return datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"query": "t1"}, {"query": "t2"}]),
        "test": datasets.Dataset.from_list([{"query": "e1"}]),
    })


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_dataset_dict_gives_every_split_with_its_name(splits, tmp_path, as_folder):
    if as_folder:
        splits.save_to_disk(str(tmp_path / "dd"))
    table = load_table(tmp_path / "dd" if as_folder else splits)
    assert table.num_rows == 3
    assert list(zip(table["query"], table["split"])) == [("t1", "train"), ("t2", "train"), ("e1", "test")]


@pytest.mark.parametrize("as_folder", [False, True])
def test_split_picks_one(splits, tmp_path, as_folder):
    if as_folder:
        splits.save_to_disk(str(tmp_path / "dd"))
    table = load_table(str(tmp_path / "dd") if as_folder else splits, split="test")
    assert table["query"] == ["e1"] and "split" not in table.column_names


def test_an_unknown_split_names_the_splits(splits):
    with pytest.raises(ValueError, match="no split 'dev'; the splits are: train, test"):
        load_table(splits, split="dev")


def test_split_on_a_single_table_is_an_error_not_ignored(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "q"}\n')
    with pytest.raises(ValueError, match="split 'test' asked for, but the input is a single table"):
        load_table(path, split="test")


def test_a_split_column_of_the_data_is_kept(tmp_path):
    table = load_table(datasets.DatasetDict({"a": datasets.Dataset.from_list([{"query": "q", "split": "mine"}])}))
    assert table["split"] == ["mine"]


def test_splits_with_different_columns_ask_for_one():
    tables = datasets.DatasetDict({"a": datasets.Dataset.from_list([{"query": "q"}]),
                                   "b": datasets.Dataset.from_list([{"text": "q"}])})
    with pytest.raises(ValueError, match=r"do not share their columns \(a: query; b: text\)"):
        load_table(tables)
