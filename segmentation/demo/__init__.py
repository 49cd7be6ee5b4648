"""The synthetic demo dataset ``axonlink demo`` builds and serves."""

from .build import DEMO_LAYERS, build_demo, demo_is_built

__all__ = ["DEMO_LAYERS", "build_demo", "demo_is_built"]
