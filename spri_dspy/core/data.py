"""Reading task data through the ``datasets`` library, with errors that name the row and field."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import datasets

TableSource = Union[str, os.PathLike, "datasets.Dataset", "datasets.DatasetDict", Sequence[Mapping[str, Any]]]
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class RowError(ValueError):
    """A data row that lacks a required field or holds a value of the wrong type."""


def load_table(source: TableSource, split: str | None = None) -> datasets.Dataset:
    """A ``datasets.Dataset`` from a Dataset or DatasetDict, a list of dicts, a .jsonl/.json/.csv/.parquet
    file, or a folder written by ``save_to_disk``.

    A DatasetDict (object or folder) gives every split, one after another, with the split's name in a
    ``split`` column (unless the table has one already); ``split`` picks one. ``split`` on a single
    table is an error, not ignored."""
    import datasets  # imported when data is read, not when spri_dspy is

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        source = datasets.load_from_disk(str(source))
    if isinstance(source, datasets.DatasetDict):
        return _splits(source, split)
    if split is not None:
        raise ValueError(f"split {split!r} asked for, but the input is a single table, not a DatasetDict "
                         "with named splits")
    if isinstance(source, datasets.Dataset):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return _from_rows([dict(row) for row in source])
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"cannot read {path}: use .jsonl, .json, .csv, .parquet or a saved dataset folder")
    if builder != "parquet":  # a pass of our own first: datasets' errors name no line, and it logs them loudly
        _check_text_file(path, jsonl=path.suffix.lower() == ".jsonl")
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # datasets wraps parser errors in its own types; name the file, keep one line
        message = " ".join(str(exc).split())[:300]
        raise ValueError(f"cannot read {path} as {path.suffix.lower()[1:]}: {type(exc).__name__}: {message}") from None
    if table.num_rows == 0:
        raise ValueError(f"{path} has no rows")
    return table


def _splits(tables: datasets.DatasetDict, split: str | None) -> datasets.Dataset:
    import datasets

    if not tables:
        raise ValueError("the DatasetDict has no splits")
    if split is not None:
        if split not in tables:
            raise ValueError(f"no split {split!r}; the splits are: {', '.join(tables)}")
        return tables[split]
    if len({frozenset(table.column_names) for table in tables.values()}) > 1:
        columns = "; ".join(f"{name}: {', '.join(table.column_names)}" for name, table in tables.items())
        raise ValueError(f"the splits do not share their columns ({columns}); choose one with --split")
    parts = []
    for name, table in tables.items():
        if "split" not in table.column_names:
            table = table.add_column("split", [name] * table.num_rows)
        parts.append(table)
    return datasets.concatenate_datasets(parts)


def _check_text_file(path: Path, *, jsonl: bool) -> None:
    """Fail with the line number on text that is not UTF-8, on a JSONL line that is not a JSON
    object (a torn last line too), or on a file with no rows."""
    rows = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RowError(f"{path} line {number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                               f"{exc.start + 1}); convert the file to UTF-8") from None
            if not text.strip():
                continue
            rows += 1
            if jsonl:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    torn = "" if raw.endswith(b"\n") else " (the last line is cut off)"
                    raise RowError(f"{path} line {number}: not valid JSON{torn}: {exc.msg}") from None
                if not isinstance(value, dict):
                    raise RowError(f"{path} line {number}: a JSON object per line is needed, got {type(value).__name__}")
    if rows == 0:
        raise ValueError(f"{path} has no rows (the file is empty or blank)")


def _from_rows(rows: list[dict[str, Any]]) -> datasets.Dataset:
    import datasets
    import pyarrow as pa

    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        first_type: dict[str, type] = {}
        for index, row in enumerate(rows):
            for field, value in row.items():
                if value is None:
                    continue
                expected = first_type.setdefault(field, type(value))
                if type(value) is not expected:
                    raise RowError(f"row {index + 1}: field {field!r} is a {type(value).__name__} where earlier rows "
                                   f"hold a {expected.__name__}: {value!r:.60}") from None
        raise RowError(f"rows do not form a table: {exc}") from None


def jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSONL file with its 1-based number: the parsed value, or the
    ``json.JSONDecodeError`` it raised (callers decide whether that stops them)."""
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, exc


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    """The one text validator: ``value`` as a non-empty string (or None when ``optional``).

    Raises TypeError or ValueError naming ``name``; :func:`text_field` adds the row.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def text_field(row: Mapping[str, Any], field: str, index: int, *, optional: bool = False) -> str | None:
    """``row[field]`` as a non-empty string (:func:`check_text`); RowError naming the row (``index`` is 0-based,
    the message 1-based, as a person counts the rows of a file) and the field otherwise."""
    if field not in row and not optional:
        raise RowError(f"row {index + 1}: missing field {field!r}")
    value = row.get(field)
    try:
        return check_text(field, value, optional=optional)
    except (TypeError, ValueError):
        raise RowError(f"row {index + 1}: field {field!r} must be a non-empty string, got {value!r:.60}") from None
