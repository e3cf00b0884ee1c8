"""Loading pretrained diffusers / transformers components without surprise downloads.

Rules: nothing downloads unless the user asked for a hub model *and* allowed downloads (the
``allow_download=True`` argument of a prior, or ``CSDKIT_ALLOW_DOWNLOADS=1``). Otherwise
``from_pretrained(..., local_files_only=True)`` reads the local Hugging Face cache or a local
folder, and missing weights raise one :class:`ModelWeightsNotFoundError` that says what to do.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

import torch

ENV_ALLOW_DOWNLOADS = "CSDKIT_ALLOW_DOWNLOADS"


class ModelWeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine and downloading was not allowed (or failed)."""


def downloads_allowed(allow_download: bool | None) -> bool:
    """The explicit argument wins; ``None`` reads ``CSDKIT_ALLOW_DOWNLOADS`` (``1``/``true``/``yes``)."""
    if allow_download is not None:
        if not isinstance(allow_download, bool):
            raise TypeError(f"allow_download must be a bool or None, got {type(allow_download).__name__}")
        return allow_download
    return os.environ.get(ENV_ALLOW_DOWNLOADS, "").strip().lower() in ("1", "true", "yes", "on")


def is_local_path(model: str) -> bool:
    """True for things that look like a filesystem path rather than a hub id ``owner/name``."""
    if os.path.exists(os.path.expanduser(model)):
        return True
    return model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") != 1


def missing_weights_message(fn: str, model: str, *, allowed: bool, subfolders: list[str],
                            cause: BaseException, env_hint: str = "") -> str:
    """One message that says what is missing and exactly what to do about it."""
    layout = ", ".join(f"{s}/" for s in subfolders)
    if is_local_path(model):
        path = pathlib.Path(model).expanduser()
        if not path.exists():
            where, detail = "does not exist", ""
        else:
            where = f"is not a complete diffusers folder ({layout})"
            detail = f" ({type(cause).__name__}: {cause})"
        return (f"{fn}: cannot load model {model!r}: the path {where}. Pass the folder of a diffusers model "
                f"(with {layout}), e.g. one saved by `DiffusionPipeline.save_pretrained(...)` or "
                f"`huggingface-cli download <model id> --local-dir PATH`.{detail}")
    if allowed:
        return (f"{fn}: could not download {model!r} from the Hugging Face hub ({type(cause).__name__}: "
                f"{cause}). "
                f"Check the network, that the model id is right and, for gated models, that you accepted the "
                f"license and are logged in (`huggingface-cli login`); or pass a local folder "
                f"instead.{env_hint}")
    return (f"{fn}: the weights of {model!r} are not on this machine and csdkit does not download models "
            f"unless asked. Either pass a local diffusers folder (model='/path/to/model', with {layout}), or "
            f"allow the download: {fn.split('(')[0]}(model={model!r}, allow_download=True) or set "
            f"{ENV_ALLOW_DOWNLOADS}=1 (a few GB, once, into the Hugging Face cache).{env_hint}")


def load_component(fn: str, loader: Callable[..., Any], model: str, subfolder: str, *, allowed: bool,
                   subfolders: list[str], **kwargs: Any) -> Any:
    """``loader(model, subfolder=..., local_files_only=not allowed, **kwargs)`` with one clear error."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            return loader(model, subfolder=subfolder, local_files_only=not allowed, **kwargs)
    except (OSError, ValueError) as exc:
        msg = missing_weights_message(fn, model, allowed=allowed, subfolders=subfolders, cause=exc)
        raise ModelWeightsNotFoundError(msg) from exc


def resolve_device_dtype(fn: str, device: torch.device | str | None,
                         dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """Defaults: the GPU when there is one; float16 on the GPU, float32 on the CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{fn}: device={str(dev)!r} but no CUDA device is available; use device='cpu'")
    if dtype is None:
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"{fn}: dtype must be torch.float16, torch.bfloat16 or torch.float32, got {dtype}")
    return dev, dtype
