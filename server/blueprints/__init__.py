"""One blueprint per area; routes come from :mod:`server.endpoints`."""
from flask import current_app

from segmentation.datasets import Datasets


def datasets_registry() -> Datasets:
    return current_app.extensions["axonlink.datasets"]


def has_graph(dataset: str) -> bool:
    """Whether ``dataset`` has a versioned graph (then the viewer proofreads it through graphene://)."""
    from segmentation.graph import Graph

    return Graph.find(current_app.config["AXONLINK_SETTINGS"].database_url, dataset) is not None
