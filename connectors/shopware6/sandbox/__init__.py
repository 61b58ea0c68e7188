"""A Shopware 6 sandbox: a real HTTP server playing the Admin API subset syncd uses.

Shipped with syncd because ``syncd demo`` and the tests start it; nothing here talks to a real shop.
"""

from .faults import Faults
from .sandbox import Sandbox
from .server import LoggedRequest

__all__ = ["Faults", "LoggedRequest", "Sandbox"]
