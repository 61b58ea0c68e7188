"""The ERP connector: the address table over SQLAlchemy (any URL; ODBC through pyodbc is the
reference path). ``open_erp`` builds it from ``[erp]``; see ``connectors/erp/README.md``."""

from syncd.connectors.erp.connector import SqlErp, open_erp
from syncd.connectors.erp.table import AddressTable, ErpStats

__all__ = ["AddressTable", "ErpStats", "SqlErp", "open_erp"]
