"""Reading checkpoint files with errors that say which file, which backbone and what was expected."""

from __future__ import annotations

import errno
import inspect
import os
import pickletools
import re
import stat
import sys
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from sam4med.errors import CheckpointError

# Width of the ViT image encoder, which tells the three SAM checkpoints apart.
SAM_ENCODER_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}

# How the two formats of ``torch.save`` begin: a zip archive (since PyTorch 1.6), or the legacy format,
# whose first pickle is a magic number (protocol 2: PROTO 2, LONG1 of 10 bytes, the number).
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
# Pickle opcodes that fetch a Python callable or call one.
CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}
STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}


def load_file(path: str | Path, what: str) -> Any:
    """The contents of a checkpoint file (on the CPU), read with ``weights_only=True``.

    The safe loader accepts tensors and plain containers only, so no file can run code when it is
    opened. ``what`` says what the file should be, for the one-line errors: a path that is missing, a
    folder or a link loop, an empty, cut-short or foreign file and a file holding code are each named
    as such (:func:`why_unreadable`).
    """
    path = Path(path).expanduser()
    _check_path(path, what)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error below says what the file is
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, foreign or hostile files
        try:
            reason = why_unreadable(path, exc)
        except Exception:  # the file went away or became unreadable meanwhile: torch's own words then
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise CheckpointError(f"{path}: cannot read as {what}: {reason}") from exc


def _check_path(path: Path, what: str) -> None:
    """Fail with one line unless ``path`` (after its links) is a regular file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CheckpointError(
                f"{path}: cannot read as {what}: a symbolic-link loop (the links point at each other), "
                "so the path cannot be resolved to a file"
            ) from None
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise CheckpointError(
                f"{path}: cannot read as {what}: a symbolic link to {os.readlink(path)}, which does not exist"
            ) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise CheckpointError(f"{path}: {what} does not exist") from None
        raise CheckpointError(f"{path}: cannot read as {what}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{path}: cannot read as {what}: it is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: cannot read as {what}: it is not a regular file")


def why_unreadable(path: Path, exc: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed with ``exc``, told from the file's first bytes.

    Nothing of the file is run: a plain pickle is only parsed (``pickletools.genops``), never loaded.
    """
    refused = re.search(r"GLOBAL ([\w.]+)", str(exc))  # the safe loader met a Python callable
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(4096)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return (
                f"the file is cut short or damaged ({size} bytes; the end of its zip archive is missing); "
                "copy it again from where it was written"
            )
        if refused:
            return _holds_code(f"'{refused.group(1)}'")
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            if not pickles:
                return "it is a zip archive without PyTorch's data.pkl, not a PyTorch checkpoint"
            with archive.open(pickles[0]) as data:  # a pickle protocol the safe loader does not parse
                call = _pickled_call(data)
        if call is not None:
            return _holds_code(call)
        return f"the file is damaged ({type(exc).__name__}: {_first_line(exc)}); copy it again from its source"
    if head.startswith(LEGACY_MAGIC):
        # a file cut inside a pickle ends in a name cut short, which the safe loader refuses too
        if refused and not (refused.group(1).startswith("torch.") and not _names_something(refused.group(1))):
            return _holds_code(f"'{refused.group(1)}'")
        return (
            f"the file is cut short or damaged ({size} bytes, legacy PyTorch format; {type(exc).__name__}); "
            "copy it again from where it was written"
        )
    with open(path, "rb") as file:
        call = _pickled_call(file)
    if call is not None:
        return _holds_code(call)
    if not head:
        return "the file is empty (0 bytes), not a PyTorch checkpoint"
    if _is_text(head):
        start = head[:40].decode("utf-8", errors="replace").strip().splitlines()
        return f"it is a text file (it begins {start[0] if start else ''!r}), not a PyTorch checkpoint"
    return "it is not a PyTorch checkpoint (neither of the two formats torch.save writes)"


def _names_something(name: str) -> bool:
    """Whether ``module.attribute`` names an attribute of a module already imported (nothing is imported or run)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        found: Any = sys.modules.get(".".join(parts[:i]))
        if found is None:
            continue
        try:
            for part in parts[i:]:
                found = inspect.getattr_static(found, part)
        except AttributeError:
            return False
        return True
    return False


def _holds_code(call: str) -> str:
    return (
        f"it holds code, not tensors (unpickling it would call {call}); the safe loader (WeightsUnpickler) "
        "refused it without running anything; only tensors and plain data are accepted"
    )


def _pickled_call(data: IO[bytes]) -> str | None:
    """What ``data``, if it parses as a whole pickle, would call when unpickled that is not one of torch's
    own rebuild functions (``'module.name'``, or a description); None when there is no such call or no
    pickle. The pickle is parsed (``pickletools.genops``), never run.
    """
    strings: list[str] = []
    call = None
    try:
        for opcode, arg, _ in pickletools.genops(data):  # stops after STOP; raises on anything else
            name = None
            if opcode.name in STRING_OPCODES:
                strings.append(str(arg))
            elif opcode.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL":
                name = f"{strings[-2]}.{strings[-1]}" if len(strings) >= 2 else "?"
            elif opcode.name in CODE_OPCODES - {"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"}:
                name = "?"  # INST, EXT*: a callable fetched by other means
            if call is None and name is not None and not _torch_own(name):
                call = f"'{name}'" if name != "?" else "a Python function"
    except Exception:  # not a whole pickle (text that happens to start like one, random bytes)
        return None
    return call


def _torch_own(name: str) -> bool:
    """Whether a pickled global is one that ``torch.save`` itself writes (tensor rebuilds, OrderedDict)."""
    return name == "torch" or name.startswith("torch.") or name == "collections.OrderedDict"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def read_state_dict(path: str | Path, backbone: str) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` (a plain state dict, or one under ``model``/``state_dict``)."""
    path = Path(path).expanduser()
    state = load_file(path, f"a PyTorch checkpoint for backbone '{backbone}'")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors, so it is no '{backbone}' checkpoint")
    return state


def guess_sam_variant(state: dict[str, torch.Tensor]) -> str | None:
    """Which SAM ViT a state dict belongs to, from its patch-embedding width (None if unknown)."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    return SAM_ENCODER_WIDTH.get(int(weight.shape[0])) if weight is not None else None


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, backbone: str) -> None:
    """``load_state_dict(strict=True)`` that explains a mismatch in one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        guess = guess_sam_variant(state)
        hint = f"; it looks like a '{guess}' checkpoint" if guess and guess != backbone else ""
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(
                f"{len(wrong_shape)} keys of the wrong shape (e.g. {k}: "
                f"{tuple(state[k].shape)} instead of {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{path}: does not fit backbone '{backbone}': {', '.join(parts)}{hint}")
    module.load_state_dict(state, strict=True)
