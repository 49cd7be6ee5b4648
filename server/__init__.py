"""axonlink's HTTP layer: a Flask application factory and one blueprint per area.

``create_app`` is imported on first use, so ``import server.cli`` (every ``axonlink`` command)
does not load Flask, the blueprints and the storage clients before it knows it needs them.
"""

__all__ = ["create_app"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
