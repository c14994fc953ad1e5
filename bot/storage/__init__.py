"""Storage behind one narrow seam: in-process memory (zero set-up) and Redis (production)."""

from bot.storage.base import AccountLock, Store, StoreUnavailable

__all__ = ["AccountLock", "Store", "StoreUnavailable"]
