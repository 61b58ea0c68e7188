"""The ERP connector: the address table over SQLAlchemy (any URL; ODBC through pyodbc is the
reference path). ``open_erp`` builds it from ``[erp]``; see ``connectors/erp/README.md``."""

from connectors.erp.connector import ErpStats, SqlErp, open_erp

__all__ = ["ErpStats", "SqlErp", "open_erp"]
