"""Task sets as TFDS datasets in `array_record` files, written and read without TensorFlow.

On-disk layout (the one `tfds` writes itself):

    <data_dir>/<name>/<version>/
        dataset_info.json, features.json
        <name>-<split>.array_record-00000-of-00001      one file per split, e.g. train, held_out

Each record is one serialised example of `FeaturesDict({"task_json": Text()})`; `task_json` is the
task's `tasks.jsonl` line (with its `id`), so a record is as readable as the JSONL file.

What works without TensorFlow (tensorflow-datasets 4.9.10, array_record 0.8.6, checked here):
- `import tensorflow_datasets as tfds` (it needs `importlib_resources`, `etils`, `protobuf`).
- `FeaturesDict.serialize_example` encodes a `tf.train.Example` with TFDS's own protobuf classes.
- `array_record_module.ArrayRecordWriter` writes the shards (`group_size:1`: one record a chunk,
  for cheap random access).
- `DatasetInfo(...).write_to_directory` writes `dataset_info.json` and `features.json` from a
  `DatasetIdentity`, a `SplitDict` of `SplitInfo`s we count ourselves, and the array_record format.
  (`tfds.folder_dataset.write_metadata` is not used: its data check reads with `as_dataset`, which
  needs TensorFlow.)
- Reading: `tfds.builder_from_directory(dir).as_data_source(split)` and
  `tfds.data_source(name, data_dir=..., split=...)` give random-access sources that decode records
  with numpy only. `load_task_source` wraps the first and parses each record into a `Task`.
What does not: `as_dataset` / `tfds.load` (tf.data pipelines) need TensorFlow.

The dataset is written under a temporary folder and renamed into place, so a reader never sees a
half-written version; writing a version that exists replaces it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence

from orchestra.data.booking import parse_task
from orchestra.data.errors import DataError
from orchestra.data.serialize import dumps_line, task_to_json
from orchestra.data.types import Task

DEFAULT_NAME = "orchestra_tasks"
DEFAULT_VERSION = "1.0.0"
FEATURE = "task_json"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_SPLIT_RE = re.compile(r"\w+")  # what TFDS split specs (e.g. "train[:10%]") can name


def _tfds():
    # Imported on use: it takes a second or two, and most users of orchestra.data never need it.
    import tensorflow_datasets as tfds
    return tfds


def task_features():
    """The feature spec of a record: one text feature holding the task's JSONL line."""
    tfds = _tfds()
    return tfds.features.FeaturesDict({FEATURE: tfds.features.Text()})


def shard_filename(name: str, split: str) -> str:
    return f"{name}-{split}.array_record-00000-of-00001"


def write_task_dataset(splits: Mapping[str, Sequence[Task]], data_dir: str | os.PathLike, *,
                       name: str = DEFAULT_NAME, version: str = DEFAULT_VERSION,
                       description: str | None = None) -> str:
    """Write `{split name: tasks}` as a TFDS dataset; returns `<data_dir>/<name>/<version>`."""
    from array_record.python.array_record_module import ArrayRecordWriter
    from etils import epath
    tfds = _tfds()
    from tensorflow_datasets.core import dataset_info, file_adapters, naming

    if not _NAME_RE.fullmatch(name):
        raise DataError(f"dataset name '{name}' must be snake_case (a-z, 0-9, _)", field="name")
    if not tfds.core.Version.is_valid(version):
        raise DataError(f"version '{version}' must look like 1.0.0", field="version")
    if not splits:
        raise DataError("no splits to write", field="splits")
    for split, tasks in splits.items():
        if not isinstance(split, str) or not _SPLIT_RE.fullmatch(split):
            raise DataError(f"split name {split!r} must be letters, digits and _", field="splits")
        if not tasks:
            raise DataError(f"split '{split}' has no tasks", field=f"splits.{split}")

    features = task_features()
    parent = os.path.join(os.fspath(data_dir), name)
    final = os.path.join(parent, version)
    tmp = os.path.join(parent, f".{version}.tmp-{os.getpid()}")  # not a version name, so TFDS skips it
    os.makedirs(parent, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        infos = []
        for split, tasks in splits.items():
            writer = ArrayRecordWriter(os.path.join(tmp, shard_filename(name, split)), "group_size:1")
            num_bytes = 0
            try:
                for task in tasks:
                    record = features.serialize_example({FEATURE: dumps_line(task_to_json(task))})
                    num_bytes += len(record)
                    writer.write(record)
            finally:
                writer.close()
            template = naming.ShardedFileTemplate(data_dir=epath.Path(tmp), dataset_name=name, split=split,
                                                  filetype_suffix="array_record")
            infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[len(tasks)], num_bytes=num_bytes,
                                             filename_template=template))
        identity = dataset_info.DatasetIdentity(name=name, version=tfds.core.Version(version), data_dir=tmp,
                                                module_name="")
        info = dataset_info.DatasetInfo(builder=identity, features=features,
                                        description=description or "orchestra tasks, one tasks.jsonl line a record")
        info.set_file_format(file_adapters.FileFormat.ARRAY_RECORD)
        info.set_splits(tfds.core.SplitDict(infos))
        info.write_to_directory(tmp)
        # dataset_info.json stores no absolute path, so the folder can be renamed into place.
        old = None
        if os.path.exists(final):
            old = os.path.join(parent, f".{version}.old-{os.getpid()}")
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class TaskSource(Sequence):
    """Random access to the `Task`s of one split: `len(source)`, `source[i]`, `source[a:b]`."""

    def __init__(self, path: str | os.PathLike, split: str):
        path = os.fspath(path)
        if not os.path.isfile(os.path.join(path, "dataset_info.json")):
            raise DataError("not a TFDS dataset version folder (no dataset_info.json)", path=path)
        builder = _tfds().builder_from_directory(path)
        if split not in builder.info.splits:
            raise DataError(f"no split '{split}'; the dataset has {sorted(builder.info.splits)}", path=path,
                            field="split")
        self.path, self.split = path, split
        self.shard = os.path.join(path, shard_filename(builder.info.name, split))
        self._source = builder.as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for split '{self.split}' of {n} tasks")
        return self._decode(i, self._source[i][FEATURE])

    def _decode(self, i: int, raw: bytes) -> Task:
        where = f"{self.shard} record {i}"
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"not a JSON task record ({e})", path=where, field=FEATURE) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise DataError("expected a task object with a string 'id'", path=where, field=FEATURE)
        return parse_task(obj, task_id=obj["id"], path=where)

    def __repr__(self) -> str:
        return f"TaskSource({self.path!r}, split={self.split!r}, len={len(self)})"


def load_task_source(path: str | os.PathLike, split: str) -> TaskSource:
    """The tasks of `split` in the dataset version folder `path` (what `write_task_dataset` returns)."""
    return TaskSource(path, split)
