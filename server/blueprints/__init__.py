"""One blueprint per area; routes come from :mod:`server.endpoints`.

This module is the blueprints' one shared room: services come from the app's
:class:`~server.workspace.Workspace`, and the helpers more than one blueprint needs live
here. Blueprints import from here, never from each other.
"""

from segmentation.datasets import GRAPH_LAYER, Datasets

from ..workspace import workspace

VIEWER_TOKEN = "axonlink"  # the viewer's path token (/v/<token>/): the same bundle, any state


def datasets_registry() -> Datasets:
    return workspace().datasets


def dataset_named(name: str):
    """The dataset (404 when unknown), read from SQL once per request."""
    return workspace().dataset(name)


def cell_tags():
    return workspace().tags


def vocabulary_of(dataset: str | None):
    return workspace().vocabulary(dataset)


def meshes_of(dataset: str):
    """The dataset's built-in meshes (see :meth:`server.workspace.Workspace.meshes`)."""
    layer = dataset_named(dataset).segmentation_layer("an image-only dataset has no meshes")
    return workspace().meshes(dataset, layer.url)


def graph_for(dataset: str):
    """The dataset's graph: 404 (DatasetNotFound / GraphNotIngested) when there is none, 409
    (NoSegmentation) for an image-only dataset."""
    return workspace().graph(dataset)


def segment_properties_of(dataset: str, moment) -> dict:
    """The tags of ``dataset`` at ``moment`` as Neuroglancer segment properties (for the segment list)."""
    from segmentation.celltypes.properties import segment_properties

    return segment_properties(cell_tags(), dataset, moment, vocabulary_of(dataset))


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
    return workspace().find_graph(dataset) is not None
