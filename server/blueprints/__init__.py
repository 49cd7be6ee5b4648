"""One blueprint per area; routes come from :mod:`server.endpoints`."""
from flask import current_app

from segmentation.datasets import GRAPH_LAYER, Datasets


def datasets_registry() -> Datasets:
    return current_app.extensions["axonlink.datasets"]


def dataset_json(dataset) -> dict:
    """A dataset as the caller may see it: layers by the URLs this server serves them at; where they
    are stored (file paths, buckets, credentials in URLs) only for the dataset's admins."""
    from segmentation.access.policy import at_least

    from .. import auth, hosts

    answer = dataset.to_json(served_at=hosts.base_url(), storage=at_least(auth.role(dataset.name), "admin"))
    if has_graph(dataset.name):
        answer["graph_layer"] = GRAPH_LAYER  # the layer the graph is built from; served as root ids
    return answer


def has_graph(dataset: str) -> bool:
    """Whether ``dataset`` has a versioned graph (then the viewer proofreads it through graphene://)."""
    from segmentation.graph import Graph

    return Graph.find(current_app.config["AXONLINK_SETTINGS"].database_url, dataset) is not None
