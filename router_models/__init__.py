"""Router model architectures: a registry of BaseModel subclasses and router checkpoints.

Adding a model: copy ``template.py``, rename the class, decorate it with
``@register_model("name")`` and add its import line below.
"""

from router_models.base_model import ACTIVATIONS, INIT_METHODS, BaseModel
from router_models.checkpoint import load_router, router_config, save_router
from router_models.ensemble import EnsembleModel
from router_models.errors import ConfigError
from router_models.group_mean import GroupMeanModel
from router_models.knn import KNNModel
from router_models.mf import MFModel

# One import line per model: importing the module registers it.
from router_models.mlp import MLPModel
from router_models.model_factory import (
    create_model,
    get_model_class,
    list_models,
    model_params,
    read_pipeline_config,
    register_model,
)
from router_models.onboarded import OnboardedModel
from router_models.prior import PRIORS, GroupPrior
from router_models.residual_mlp import ResidualMLPModel
from router_models.routing import margin_offsets, route
from router_models.template import TemplateModel

__all__ = [
    "ACTIVATIONS",
    "INIT_METHODS",
    "BaseModel",
    "ConfigError",
    "EnsembleModel",
    "GroupMeanModel",
    "GroupPrior",
    "KNNModel",
    "MFModel",
    "PRIORS",
    "MLPModel",
    "OnboardedModel",
    "ResidualMLPModel",
    "TemplateModel",
    "create_model",
    "get_model_class",
    "list_models",
    "load_router",
    "model_params",
    "margin_offsets",
    "read_pipeline_config",
    "register_model",
    "route",
    "router_config",
    "save_router",
]
