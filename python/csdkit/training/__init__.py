"""The optimization loop shared by every job, and the run directory it writes."""

from .checkpoint import atomic_save, load_latest
from .report import write_report
from .run_dir import RunDirectory, image_grid, save_png
from .trainer import Trainer, TrainerResult

__all__ = ["RunDirectory", "Trainer", "TrainerResult", "atomic_save", "image_grid", "load_latest", "save_png",
           "write_report"]
