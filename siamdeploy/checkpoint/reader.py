"""Reading checkpoint files safely.

``torch.load`` of an untrusted pickle can execute code, so files are read with ``weights_only=True``.
A file that needs full unpickling is refused unless the caller opts in explicitly.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError

log = logging.getLogger(__name__)

# Wrappers seen in the wild: pysot/foolwood snapshots ('state_dict'), haooozi/SiamTrackers ('model').
_WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict")
_TRUST_HINT = ("if you trust this file, pass allow_unsafe_pickle=True "
               "(CLI: --trust-checkpoint); loading it runs code stored in the file")


def read_state_dict(path: str | os.PathLike[str], allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict on the CPU.

    Unwraps training snapshots (``{'epoch', 'state_dict' | 'model', 'optimizer'}``), strips ``module.``
    prefixes (DataParallel) and drops ``num_batches_tracked`` buffers.
    Raises :class:`CheckpointError` with a one-line reason for anything unreadable.
    """
    return read_checkpoint(path, allow_unsafe_pickle)[0]


def read_checkpoint(path: str | os.PathLike[str], allow_unsafe_pickle: bool = False
                    ) -> tuple[dict[str, torch.Tensor], str | None]:
    """Like :func:`read_state_dict`, also returning the wrapper key the tensors were found under
    (``'state_dict'``, ``'model'`` ... or None for a plain state dict): it tells some code bases apart."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint '{path}' is a folder; pass the .pth/.model file itself")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); download or copy it again")
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"'{path}' is not a checkpoint: not a PyTorch file (neither the zip archive nor "
                              "the pickle that torch.save writes); pass a .pth/.model file saved with torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except pickle.UnpicklingError as err:
        # torch words every weights-only refusal alike; only "Unsupported global" means real Python objects
        # (anything else is a file that is not a checkpoint at all, and trusting it would not help).
        if "unsupported global" in str(err).lower():
            raise CheckpointError(
                f"checkpoint '{path}' contains Python objects beyond tensors and needs full unpickling; "
                f"{_TRUST_HINT}") from None
        raise CheckpointError(f"'{path}' is not a checkpoint: not a PyTorch file (its pickle data cannot be "
                              "read as one); pass a .pth/.model file saved with torch.save") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError, KeyError,
            IndexError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"cannot read checkpoint '{path}': it is truncated or not a PyTorch file "
                              f"({_short(err)}); download or copy it again") from None
    state = normalise_state_dict(obj, path)
    check_finite(state, path)
    return state, _wrapper_key(obj)


def _looks_like_torch_file(path: str) -> bool:
    """torch.save writes a zip archive (torch >= 1.6), or a pickle (protocol >= 2, first byte 0x80), or
    (torch < 0.4) a tar archive; anything else is not a checkpoint."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" or head[257:262] == b"ustar"


def check_finite(state: Mapping[str, torch.Tensor], origin: str = "checkpoint") -> None:
    """Refuse a state dict with NaN or infinite values, naming the tensors (they would track a constant box)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"checkpoint '{origin}' has NaN or infinite values in {len(bad)} tensor(s) "
                              f"({_preview(bad, 3)}); it is corrupt or from a diverged training run: use "
                              "another checkpoint")


def _wrapper_key(obj: Any) -> str | None:
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        return next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
    return None


def normalise_state_dict(obj: Any, origin: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap a loaded object into a flat tensor dict (see :func:`read_state_dict`)."""
    for _ in range(3):  # nested wrappers, e.g. {'model': {'state_dict': ...}}
        key = _wrapper_key(obj)
        if key is None:
            break
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{origin} does not hold a state dict (got {type(obj).__name__}); "
                              "pass a checkpoint saved from a model's state_dict()")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{origin} holds no tensors (keys: {_preview(list(obj))}); "
                              "pass a checkpoint saved from a model's state_dict()")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return {k: v.float() if v.is_floating_point() else v
            for k, v in tensors.items() if not k.endswith("num_batches_tracked")}


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


def _preview(keys: list[Any], n: int = 5) -> str:
    shown = ", ".join(map(str, keys[:n]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")
