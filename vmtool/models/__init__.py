"""Joint music/video embedding models: networks, losses, checkpoints.

Importing this package imports torch; the command line does it lazily.
"""

from vmtool.models.checkpoint import MODEL_FORMAT, MODEL_VERSION, is_model_file, load_model, read_model_info, save_model
from vmtool.models.nets import AGGREGATIONS, ModelConfig, VMNet

__all__ = ["ModelConfig", "VMNet", "AGGREGATIONS", "save_model", "load_model", "read_model_info", "is_model_file",
           "MODEL_FORMAT", "MODEL_VERSION"]
