"""Hardware mapping: the physical scaling (V_cm, V_u, I_u, C, tau) shared by every back-end stage."""
from .limits import DeviceLimits
from .mapping import Scaling, map_model, calibration_ranges

__all__ = ["DeviceLimits", "Scaling", "map_model", "calibration_ranges"]
