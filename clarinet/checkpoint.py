"""Checkpoints: atomic writes, safe (``weights_only``) loads, and models rebuilt from their config.

A checkpoint is one ``torch.save`` file holding only tensors, dicts, lists, tuples, numbers, strings,
booleans and ``None`` (so ``torch.load(weights_only=True)`` reads it and never runs pickled code)::

    {
        "format": "clarinet-checkpoint", "format_version": 1,
        "kind": "GaussianWaveNet",            # the model's class name
        "config": {...},                      # model.config: the constructor arguments
        "model": {...},                       # model.state_dict()
        "ema": {"decay", "num_updates", "shadow": {name: tensor}} or None,   # averaged parameters
        "optimizer": {...} or None, "scheduler": {...} or None,
        "step": int, "extra": {...} or None,  # e.g. the training and audio configurations
        "clarinet_version": str, "torch_version": str,
    }

Files are written to a temporary file in the same folder (``.<name>.<random>.tmp``), flushed, fsynced and
moved into place with ``os.replace``: a crash leaves either the old file or the new one, never half of
one. Training writes step-numbered files (``step-000100.pt``); :func:`latest_checkpoint` finds the newest.
"""
from __future__ import annotations

import collections
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "checkpoint_info",
    "checkpoint_name",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "model_from_checkpoint",
    "model_state",
    "prune_checkpoints",
    "save_checkpoint",
    "save_step_checkpoint",
]

FORMAT = "clarinet-checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
_PLAIN = (bool, int, float, str, type(None))  # exact types: subclasses (numpy scalars, TorchVersion) are refused


def checkpoint_name(step: int) -> str:
    """The file name training uses for the checkpoint at ``step``: ``step-000100.pt``."""
    return f"step-{int(step):06d}.pt"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError unless ``obj`` is made only of what ``torch.load(weights_only=True)`` accepts."""
    if type(obj) in _PLAIN or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (dict, collections.OrderedDict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} cannot be stored in a checkpoint "
                                "(use str or int keys)")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: a value of type {type(obj).__name__} cannot be stored in a checkpoint "
                    "(only tensors, dicts, lists, tuples, numbers, strings, booleans and None)")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, *, model: torch.nn.Module, optimizer=None, scheduler=None, ema=None, step: int,
                    extra: Mapping | None = None) -> Path:
    """Write a checkpoint atomically and return its path.

    ``model`` needs a ``.config`` dict of its constructor arguments (the clarinet models have one) so that
    :func:`load_model` can rebuild it; wrappers (DistributedDataParallel, ``torch.compile``) are unwrapped.
    ``optimizer`` and ``scheduler`` are saved through their ``state_dict()``; ``ema`` is an object with a
    ``state_dict()`` (e.g. :class:`clarinet.training.EMA`) or such a dict. ``extra`` is any plain data
    (dicts, lists, numbers, strings, tensors). A value that ``weights_only`` loading could not read is
    refused with a TypeError before anything is written.
    """
    path = Path(path)
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise TypeError(f"save_checkpoint: {type(model).__name__} has no .config dict of constructor arguments, "
                        "so load_model could not rebuild it")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"save_checkpoint: step must be an int >= 0, got {step!r}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": type(model).__name__,
        "config": dict(config),
        "model": model.state_dict(),
        "ema": ema.state_dict() if hasattr(ema, "state_dict") else ema,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": step,
        "extra": dict(extra) if extra is not None else None,
        "clarinet_version": _version(),
        "torch_version": str(torch.__version__),
    }
    _check_plain(payload, "checkpoint")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _version() -> str:
    from . import __version__

    return __version__


def load_checkpoint(path, map_location="cpu", *, verify: bool = True) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one that is
    truncated, corrupt, or not a clarinet checkpoint. ``verify``: check every record's CRC-32 first
    (one extra read of the file; ``torch.load`` itself would load damaged tensor bytes silently).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist" if not path.exists()
                                else f"checkpoint {str(path)!r} is not a file")
    if not zipfile.is_zipfile(path):  # save_checkpoint always writes torch's zip format
        raise ValueError(f"checkpoint {str(path)!r} is corrupt or truncated, or not a checkpoint "
                         "(not a complete torch zip archive)")
    if verify:
        # torch.load does not check the archive's CRC-32s: flipped bytes in a tensor would load silently
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"checkpoint {str(path)!r} is corrupt ({type(e).__name__}: {e})") from e
        if bad is not None:
            raise ValueError(f"checkpoint {str(path)!r} is corrupt: record {bad!r} fails its CRC-32 check")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        line = next((x.strip() for x in str(e).splitlines() if "Unsupported global" in x), None)
        if line is None:
            raise ValueError(f"checkpoint {str(path)!r} is corrupt ({type(e).__name__}: {e})") from e
        raise ValueError(f"{str(path)!r} holds Python objects that a weights-only load refuses, so it was not "
                         f"written by clarinet.checkpoint.save_checkpoint ({line})") from e
    except Exception as e:  # zip errors, EOF, bad records: all mean the file is unusable
        raise ValueError(f"checkpoint {str(path)!r} is corrupt or truncated, or not a checkpoint "
                         f"({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a clarinet checkpoint (no 'format': {FORMAT!r} entry)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format version {version!r}; this clarinet reads "
                         f"versions up to {FORMAT_VERSION} (upgrade clarinet)")
    for key in ("kind", "config", "model", "step"):
        if key not in ckpt:
            raise ValueError(f"checkpoint {str(path)!r} has no {key!r} entry")
    return ckpt


def _model_class(kind: str):
    from . import models

    cls = getattr(models, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"checkpoint holds a model of kind {kind!r}, which clarinet.models does not define")
    return cls


def check_kind(ckpt: Mapping, expected, path="checkpoint") -> None:
    """ValueError unless the checkpoint's model kind is ``expected`` (a class or a class name)."""
    name = expected if isinstance(expected, str) else expected.__name__
    if ckpt["kind"] != name:
        raise ValueError(f"{path}: expected a {name} checkpoint, found a {ckpt['kind']} checkpoint")


def model_state(ckpt: Mapping, *, ema: bool = True) -> dict:
    """The state dict to load: the EMA (averaged) parameters over the raw ones when ``ema`` and present."""
    state = dict(ckpt["model"])
    shadow = (ckpt.get("ema") or {}).get("shadow") if ema else None
    if shadow:
        missing = set(shadow) - set(state)
        if missing:
            raise ValueError(f"checkpoint EMA holds parameters the model does not have: {sorted(missing)[:5]}")
        state.update(shadow)
    return state


def load_model(path, expected=None, *, ema: bool = True, map_location="cpu", **overrides) -> torch.nn.Module:
    """Rebuild the model stored in a checkpoint, with its weights, in eval mode.

    ``expected``: a model class (or class name); a checkpoint of another kind raises ValueError saying
    expected vs found. ``ema``: load the exponential-moving-average weights when the checkpoint has them
    (the default; they are what inference and distillation should use). ``overrides`` replace constructor
    arguments that do not change the weights' shapes, e.g. ``backend="triton"``.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    if expected is not None:
        check_kind(ckpt, expected, repr(str(path)))
    model = model_from_checkpoint(ckpt, ema=ema, source=f"checkpoint {str(path)!r}", **overrides)
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    return model.eval()


def model_from_checkpoint(ckpt: Mapping, *, ema: bool = True, source: str = "checkpoint",
                          **overrides) -> torch.nn.Module:
    """The model of a loaded checkpoint (:func:`load_checkpoint`): its class (by ``kind``) built from its
    config and ``overrides``, with its weights (EMA when ``ema`` and present), where the weights are.
    ValueError (naming ``source``) when the weights do not fit."""
    cls = _model_class(ckpt["kind"])
    config = {**ckpt["config"], **overrides}
    model = cls(**config)
    try:
        model.load_state_dict(model_state(ckpt, ema=ema))
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit a {cls.__name__}({config}): {e}") from e
    return model


def checkpoint_info(ckpt: Mapping) -> dict:
    """A loaded checkpoint without its weights and optimizer state (kind, config, step, extra, versions),
    plus ``used_ema``: whether it holds EMA weights (which :func:`model_state` then prefers)."""
    info = {k: v for k, v in ckpt.items() if k not in ("model", "ema", "optimizer", "scheduler")}
    info["used_ema"] = bool((ckpt.get("ema") or {}).get("shadow"))
    return info


def list_checkpoints(folder) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step-numbered checkpoints in ``folder``, oldest first (temp files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STEP_FILE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder) -> Path | None:
    """The newest complete step-numbered checkpoint in ``folder``, or None.

    Temporary files of interrupted writes are never candidates; a file that is not a readable archive
    (e.g. copied in truncated) is skipped with a warning and the next newest is used.
    """
    for step, p in reversed(list_checkpoints(folder)):
        if zipfile.is_zipfile(p):
            return p
        warnings.warn(f"skipping {str(p)!r}: not a complete checkpoint", RuntimeWarning, stacklevel=2)
    return None


def save_step_checkpoint(folder, step: int, *, keep: int, **contents) -> Path:
    """:func:`save_checkpoint` to ``folder/step-NNNNNN.pt`` (``contents``: its keywords but ``step``), then
    :func:`prune_checkpoints` down to the newest ``keep``: how training rotates its checkpoints."""
    path = save_checkpoint(Path(folder) / checkpoint_name(step), step=step, **contents)
    prune_checkpoints(folder, keep)
    return path


def prune_checkpoints(folder, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` step-numbered checkpoints (and stale temp files); return the deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    return _unlink_all(p for _, p in list_checkpoints(folder)[:-keep])


def remove_temp_files(folder) -> list[Path]:
    """Delete temp files left by interrupted :func:`save_checkpoint` calls of step-numbered checkpoints."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return _unlink_all(folder.glob(".step-*.pt.*.tmp"))


def _unlink_all(paths) -> list[Path]:
    """Delete the files (ones already gone are skipped); return those deleted."""
    deleted = []
    for p in paths:
        try:
            p.unlink()
            deleted.append(p)
        except FileNotFoundError:
            pass
    return deleted
