"""Our BTYD core: one registered class per purchase model (BG/NBD, MBG/NBD, Pareto/NBD, BG/BB) and Gamma-Gamma."""

from models.clv.btyd import bgnbd, pareto_nbd, bgbb  # noqa: F401, I001  (import order = registry order)
from models.clv.btyd.base import REGISTRY, PurchaseModel, get, register
from models.clv.btyd.gamma_gamma import SPEND_MODEL, GammaGamma

__all__ = ["REGISTRY", "SPEND_MODEL", "GammaGamma", "PurchaseModel", "get", "register"]
