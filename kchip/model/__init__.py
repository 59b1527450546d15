"""Software KirchhoffNet: i-v laws, topology generators, the forward/reverse model, file I/O and import."""
from .laws import LAWS, Law, get_law
from .net import KirchhoffNet, Period
from .topology import GENERATORS, generate
from .io import (atomic_torch_save, import_official, load_model, model_from_dict, model_to_dict,
                 save_model)

__all__ = ["LAWS", "Law", "get_law", "KirchhoffNet", "Period", "GENERATORS", "generate", "import_official",
           "load_model", "save_model", "model_from_dict", "model_to_dict", "atomic_torch_save"]
