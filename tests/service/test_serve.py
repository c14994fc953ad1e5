"""``smsbot serve``'s process set-up: the event loop and the garbage collector."""

from __future__ import annotations

import gc

from aiohttp import web

from bot.serve import GC_THRESHOLDS, tune_garbage_collector


async def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    kept = [{"start-up": i} for i in range(1000)]  # stands for the NLU model, flows, packs
    try:
        await tune_garbage_collector(web.Application())
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
