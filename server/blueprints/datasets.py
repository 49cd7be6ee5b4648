"""Dataset listing and description as JSON (``/api/v1/datasets``)."""

from __future__ import annotations

import json
from urllib.parse import quote

from flask import Blueprint, jsonify, render_template

from frontend_config import default_state
from segmentation.datasets import DatasetNotFound

from .. import auth, endpoints, hosts
from ..errors import json_error
from . import dataset_json, dataset_named, has_graph, has_synapses

blueprint = Blueprint("datasets", __name__)


def list_datasets():
    return jsonify({"datasets": [dataset_json(d) for d in auth.visible_datasets()]})


def get_dataset(name: str):
    try:
        dataset = dataset_named(name)
    except DatasetNotFound as error:
        return json_error(404, str(error))
    return jsonify(dataset_json(dataset))


def dataset_state(name: str):
    try:
        dataset = dataset_named(name)
    except DatasetNotFound as error:
        return json_error(404, str(error))
    return jsonify(default_state(dataset, hosts.base_url(), graphene=has_graph(name), synapses=has_synapses(name)))


def viewer_link(dataset, base_url: str) -> str:
    """A viewer URL that opens ``dataset`` (its default state in the fragment)."""
    state = json.dumps(
        default_state(dataset, base_url, graphene=has_graph(dataset.name), synapses=has_synapses(dataset.name)),
        separators=(",", ":"),
    )
    return "/#!" + quote(state, safe="")


def datasets_page():
    datasets = auth.visible_datasets()
    base = hosts.base_url()
    links = {d.name: viewer_link(d, base) for d in datasets}
    graphs = {d.name for d in datasets if has_graph(d.name)}
    return render_template("datasets.html", datasets=datasets, viewer_links=links, graphs=graphs)


endpoints.register(
    blueprint,
    endpoints.DATASETS,
    {
        "datasets_page": datasets_page,
        "list_datasets": list_datasets,
        "get_dataset": get_dataset,
        "dataset_state": dataset_state,
    },
)
