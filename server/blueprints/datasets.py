"""Dataset listing and description as JSON (``/api/v1/datasets``)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from frontend_config import default_state
from segmentation.datasets import DatasetNotFound

from .. import endpoints
from ..errors import json_error
from . import datasets_registry

blueprint = Blueprint("datasets", __name__)


def list_datasets():
    return jsonify({"datasets": [d.to_json() for d in datasets_registry().list()]})


def get_dataset(name: str):
    try:
        dataset = datasets_registry().get(name)
    except DatasetNotFound as error:
        return json_error(404, str(error))
    return jsonify(dataset.to_json())


def dataset_state(name: str):
    try:
        dataset = datasets_registry().get(name)
    except DatasetNotFound as error:
        return json_error(404, str(error))
    return jsonify(default_state(dataset, request.host_url.rstrip("/")))


endpoints.register(
    blueprint,
    endpoints.DATASETS,
    {"list_datasets": list_datasets, "get_dataset": get_dataset, "dataset_state": dataset_state},
)
