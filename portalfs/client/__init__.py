"""The upload-portal API client: endpoints, signed-URL transfers and the typed errors.

The only package that imports requests.
"""

from .errors import PortalError
from .models import ListPage, PortalFile, PortalInfo, UploadLink
from .portal import Credentials, PortalClient
from .storage import StorageClient
from .transport import Transport

__all__ = [
    "Credentials",
    "ListPage",
    "PortalClient",
    "PortalError",
    "PortalFile",
    "PortalInfo",
    "StorageClient",
    "Transport",
    "UploadLink",
]
