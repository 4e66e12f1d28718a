"""sonorisk: lesion-by-lesion breast cancer risk from freehand ultrasound video.

Research software. Nothing it outputs is a clinical result unless a model
validated for clinical use is loaded; every report says which model made it.
"""

__version__ = "0.1.0"
