"""Typed application keys: the service's resources, created in ``create_app``'s cleanup_ctx."""

from __future__ import annotations

from aiohttp import web

from bot.campaigns.service import Campaigns
from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.desk.config import DeskSettings
from bot.desk.service import Desk
from bot.outbound.sender import Sender
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.storage.agents import AgentStore
from bot.storage.base import Store
from dialogs.registry import Registry
from intents import Understander

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Store)
NLU = web.AppKey("nlu", Understander)
FLOWS = web.AppKey("flows", Registry)
GATE = web.AppKey("gate", Gate)
PIPELINE = web.AppKey("pipeline", Pipeline)
SENDER = web.AppKey("sender", Sender)
API_KEY = web.AppKey("api_key", str)
AGENTS = web.AppKey("agents", AgentStore)  # who may sign in to the console (bot/console)
DESK = web.AppKey("desk", DeskSettings)
# The case queue's service functions, for the console's web layer (bot.desk.service).
DESK_SERVICE = web.AppKey("desk_service", Desk)
# Campaigns: import, pause, status, and the release step the pipeline's loop runs.
CAMPAIGNS = web.AppKey("campaigns", Campaigns)
