"""The outbound seam: what sends an SMS. Real carriers plug in here (a later issue); today the
sandbox provider records every message in the store instead of sending it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.records import Outbound
from bot.storage.base import Store


class SendResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["sent", "failed"]
    provider_id: str | None = None
    error: str | None = None


class Provider(ABC):
    name: str

    @abstractmethod
    async def send(self, message: Outbound) -> SendResult: ...


class SandboxProvider(Provider):
    """Records outbound messages (GET /api/sandbox/messages); nothing leaves the machine."""

    name = "sandbox"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def send(self, message: Outbound) -> SendResult:
        await self._store.record_sandbox(message)
        return SendResult(status="sent", provider_id=f"sandbox:{message.id}")
