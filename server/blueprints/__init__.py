"""One blueprint per area; routes come from :mod:`server.endpoints`."""
from flask import current_app

from segmentation.datasets import Datasets


def datasets_registry() -> Datasets:
    return current_app.extensions["axonlink.datasets"]
