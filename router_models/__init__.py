"""Router model architectures: a registry of BaseModel subclasses and router checkpoints.

Adding a model: copy ``template.py``, rename the class, decorate it with
``@register_model("name")`` and add its import line below.
"""

from router_models.base_model import ACTIVATIONS, INIT_METHODS, BaseModel
from router_models.checkpoint import load_router, router_config, save_router

# One import line per model: importing the module registers it.
from router_models.mlp import MLPModel
from router_models.model_factory import (
    ConfigError,
    create_model,
    get_model_class,
    list_models,
    read_pipeline_config,
    register_model,
)
from router_models.residual_mlp import ResidualMLPModel
from router_models.template import TemplateModel

__all__ = [
    "ACTIVATIONS",
    "INIT_METHODS",
    "BaseModel",
    "ConfigError",
    "MLPModel",
    "ResidualMLPModel",
    "TemplateModel",
    "create_model",
    "get_model_class",
    "list_models",
    "load_router",
    "read_pipeline_config",
    "register_model",
    "router_config",
    "save_router",
]
