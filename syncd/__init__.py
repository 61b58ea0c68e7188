"""syncd: keeps ERP customer addresses and online-shop customer accounts in step."""

__version__ = "0.1.0"
