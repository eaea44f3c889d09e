"""Reading an offline W&B run (``run-*.wandb``) back, for tests: no network, no W&B service.

The file is W&B's record log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of chunks,
each with a 7-byte header (CRC-32, length, type: 1 full, 2 first, 3 middle, 4 last); a record, once its
chunks are joined, is a ``wandb_internal_pb2.Record`` protobuf.
"""

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of an offline run file, in order."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is no W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pending += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def logged(path: Path) -> tuple[dict[str, list], dict[str, object]]:
    """(history: every value logged per key, in order; summary: the last summary value per key)."""
    history: dict[str, list] = {}
    summary: dict[str, object] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                history.setdefault(item.key or "/".join(item.nested_key), []).append(json.loads(item.value_json))
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, summary


def artifact_files(path: Path) -> dict[str, list[str]]:
    """The files of every artifact the run logged (tables with their images), by artifact name."""
    return {
        record.artifact.name: [entry.path for entry in record.artifact.manifest.contents]
        for record in records(path)
        if record.WhichOneof("record_type") == "artifact"
    }
