"""Typed Dagster resources: the three stores and the archive being replayed.

The embedded default and a production deployment differ only in the URLs these resources get
from the environment (see `settings.py`), never in asset code.
"""

from recsys_resources.errors import RecsysError
from recsys_resources.resources import ArchiveResource, ModelingResource, ServingResource, StoreResource
from recsys_resources.settings import Settings, store_urls
from recsys_resources.stores import Store, open_store

__all__ = [
    "ArchiveResource",
    "ModelingResource",
    "RecsysError",
    "ServingResource",
    "Settings",
    "Store",
    "StoreResource",
    "open_store",
    "store_urls",
]
