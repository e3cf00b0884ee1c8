"""The job table of ``csdkit batch``: a manifest's ``job`` name -> the job function, looked up at run time.

A job is a plain function of the pipelines layer (``texture``, and ``generate`` / ``edit`` when they land)
with the run-directory conventions of :class:`csdkit.training.RunDirectory`: it takes ``out_dir``,
``resume`` and ``progress`` keywords and returns a result with ``status`` (``"completed"`` when done)
and ``files`` (output name -> path). The table holds ``"module:function"`` strings, so a job module is
imported only when a manifest names it, and a job that is not in this build is reported by name::

    register_job("generate", "csdkit.pipelines.generate:generate")

The manifest fields an item may set are the job's own keyword parameters (read from its signature), less
the ones the batch runner owns (:data:`RESERVED`); the job's parameters without a default (``mesh``,
``prompt`` for ``texture``) are the item's required fields.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from typing import Any

#: name -> "module:function". ``generate`` and ``edit`` are listed so that they work the moment their
#: modules exist; until then a manifest naming them gets "job 'generate' is not available in this build".
JOB_TABLE: dict[str, str] = {
    "texture": "csdkit.pipelines.texture:texture",
    "generate": "csdkit.pipelines.generate:generate",
    "edit": "csdkit.pipelines.edit:edit",
}

#: Keywords the batch runner passes itself; a manifest may not set them.
RESERVED = ("out_dir", "resume", "progress", "callback", "quiet", "device")

#: Manifest spellings of the CLI (``negative``, ``model``) -> the job's keyword, when the job has it.
ALIASES = {"negative": "negative_prompt", "model": "prior"}

#: Options that are not job keywords: honoured by the batch worker only with ``CSDKIT_BATCH_TEST_HOOKS=1``.
TEST_HOOKS = ("_test_crash",)
TEST_CRASH_MODES = ("segfault", "exit", "raise", "hang", "oom")


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One job of the table, resolved: its function and the fields a manifest item may give it.

    Attributes:
        name: the manifest's ``job`` value.
        fn: the job function.
        required: fields every item must give (parameters without a default, in signature order).
        options: optional fields (keyword parameters with a default, less :data:`RESERVED`).
        aliases: manifest spelling -> keyword, for the aliases this job accepts.
    """

    name: str
    fn: Callable[..., Any]
    required: tuple[str, ...]
    options: tuple[str, ...]
    aliases: dict[str, str]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.options + tuple(self.aliases)


def register_job(name: str, target: str | Callable[..., Any]) -> None:
    """Add (or replace) a job: ``target`` is ``"package.module:function"`` or the function itself."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_job(): name must be an identifier, got {name!r}")
    if callable(target):
        target = f"{target.__module__}:{target.__qualname__}"
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"register_job(): target must be 'module:function' or a function, got {target!r}")
    JOB_TABLE[name] = target
    _CACHE.pop(name, None)


_CACHE: dict[str, JobSpec] = {}


def available_jobs() -> list[str]:
    """Names of the jobs whose module imports in this build."""
    out = []
    for name in JOB_TABLE:
        try:
            get_job(name)
        except ValueError:
            continue
        out.append(name)
    return out


def get_job(name: str) -> JobSpec:
    """The :class:`JobSpec` of ``name``; ValueError for a name outside the table or a job not in this build."""
    if name in _CACHE:
        return _CACHE[name]
    if name not in JOB_TABLE:
        raise ValueError(f"unknown job {name!r}; known jobs: {sorted(JOB_TABLE)}")
    module_name, fn_name = JOB_TABLE[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(f"job {name!r} is not available in this build (no module {module_name})") from None
        raise
    fn = module
    for part in fn_name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"job {name!r}: {module_name} has no function {fn_name}")
    params = inspect.signature(fn).parameters.values()
    usable = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)]
    for needed in ("out_dir", "resume", "progress"):
        if needed not in {p.name for p in usable}:
            raise ValueError(f"job {name!r}: {JOB_TABLE[name]} takes no {needed!r} keyword, so it cannot run "
                             "in a batch")
    required = tuple(p.name for p in usable if p.default is p.empty)
    options = tuple(p.name for p in usable if p.default is not p.empty and p.name not in RESERVED)
    aliases = {a: k for a, k in ALIASES.items() if k in options and a not in options}
    spec = JobSpec(name, fn, required, options, aliases)
    _CACHE[name] = spec
    return spec


def accepts(spec: JobSpec, keyword: str) -> bool:
    """True when the job function takes ``keyword`` (e.g. ``quiet``, ``device``)."""
    return keyword in inspect.signature(spec.fn).parameters
