"""Task sets as TFDS array_record datasets, written and read without TensorFlow."""

import importlib.util
import json
import os

import pytest
from data_asserts import assert_located

from orchestra.data.errors import DataError
from orchestra.data.serialize import task_to_json
from orchestra.data.tfds_builder import load_task_source, shard_filename, task_features, write_task_dataset


@pytest.fixture(scope="module")
def written(booking, tmp_path_factory):
    splits = {"train": booking.tasks[:65], "held_out": booking.tasks[65:]}
    return splits, write_task_dataset(splits, tmp_path_factory.mktemp("tfds"))


def test_tensorflow_is_not_installed():
    assert importlib.util.find_spec("tensorflow") is None


def test_layout_is_tfds_on_disk_layout(written):
    _, path = written
    assert path.endswith(os.path.join("orchestra_tasks", "1.0.0"))
    assert sorted(os.listdir(path)) == ["dataset_info.json", "features.json",
                                        "orchestra_tasks-held_out.array_record-00000-of-00001",
                                        "orchestra_tasks-train.array_record-00000-of-00001"]
    assert not [p for p in os.listdir(os.path.dirname(path)) if p != "1.0.0"]  # no temporary folders left


def test_real_tasks_round_trip_through_both_splits(written):
    splits, path = written
    for split, tasks in splits.items():
        source = load_task_source(path, split)
        assert len(source) == len(tasks)
        assert list(source) == list(tasks)
    held_out = load_task_source(path, "held_out")
    assert held_out[-1] == splits["held_out"][-1] and held_out[2:4] == list(splits["held_out"][2:4])
    with pytest.raises(IndexError):
        held_out[len(held_out)]


def test_tfds_itself_reads_the_dataset(written):
    import tensorflow_datasets as tfds
    splits, path = written
    builder = tfds.builder_from_directory(path)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 65, "held_out": 16}
    source = tfds.data_source("orchestra_tasks", data_dir=os.path.dirname(os.path.dirname(path)),
                              split="held_out", try_gcs=False)
    assert [json.loads(r["task_json"]) for r in source] == [task_to_json(t) for t in splits["held_out"]]


def test_unknown_split_and_missing_folder_are_clear_errors(written, tmp_path):
    _, path = written
    with pytest.raises(DataError, match=r"no split 'test'.*held_out.*train") as e:
        load_task_source(path, "test")
    assert_located(e.value, path, None, "split")
    with pytest.raises(DataError, match="no dataset_info.json") as e:
        load_task_source(tmp_path, "train")
    assert e.value.path == str(tmp_path)


@pytest.mark.parametrize("splits, field", [
    ({}, "splits"),
    ({"held-out": "x"}, "splits"),
    ({"train": []}, "splits.train"),
])
def test_bad_splits_are_refused_before_anything_is_written(booking, tmp_path, splits, field):
    splits = {k: (booking.tasks[:1] if v == "x" else v) for k, v in splits.items()}
    with pytest.raises(DataError) as e:
        write_task_dataset(splits, tmp_path)
    assert e.value.field == field
    assert not (tmp_path / "orchestra_tasks").exists()


def test_rewriting_a_version_replaces_it(booking, tmp_path):
    write_task_dataset({"train": booking.tasks[:3], "held_out": booking.tasks[3:5]}, tmp_path, name="small")
    path = write_task_dataset({"train": booking.tasks[5:6]}, tmp_path, name="small")
    assert list(load_task_source(path, "train")) == [booking.tasks[5]]
    with pytest.raises(DataError, match="no split 'held_out'"):
        load_task_source(path, "held_out")
    assert os.listdir(tmp_path / "small") == ["1.0.0"]


def test_corrupt_record_names_the_shard_record_and_feature(booking, tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter
    path = write_task_dataset({"train": booking.tasks[:1]}, tmp_path, name="broken")
    shard = os.path.join(path, shard_filename("broken", "train"))
    writer = ArrayRecordWriter(shard, "group_size:1")
    writer.write(task_features().serialize_example({"task_json": '{"id": "x", "query": '}))
    writer.close()
    source = load_task_source(path, "train")
    with pytest.raises(DataError, match="not a JSON task record") as e:
        source[0]
    assert_located(e.value, f"{shard} record 0", None, "task_json")
