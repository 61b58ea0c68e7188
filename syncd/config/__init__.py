from syncd.config.model import Settings

__all__ = ["Settings"]
