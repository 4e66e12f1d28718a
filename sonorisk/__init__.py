"""sonorisk: lesion-by-lesion breast cancer risk from freehand ultrasound video.

Research software. Nothing it outputs is a clinical result unless a model
validated for clinical use is loaded; every report says which model made it.
"""

__version__ = "0.1.0"

# Before anything imports torch: OpenMP threads must not spin on a shared
# machine (sonorisk/threads.py says why and what it costs otherwise).
from sonorisk.threads import passive_openmp as _passive_openmp  # noqa: E402

_passive_openmp()
