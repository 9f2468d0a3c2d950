"""Typed Dagster resources: the three stores, the archive being replayed, modeling, monitoring and serving.

Each resource is configuration plus a way to build the library object it stands for (an open
`recsys.stores.Store`, `ModelingSettings`, `ServingSettings`). The embedded default and a
production deployment differ only in the values `build_resources` gets from `Settings`.
"""

from recsys_resources.resources import (
    ArchiveResource,
    ModelingResource,
    MonitoringResource,
    ServingResource,
    StoreResource,
    build_resources,
)

__all__ = ["ArchiveResource", "ModelingResource", "MonitoringResource", "ServingResource", "StoreResource", "build_resources"]
