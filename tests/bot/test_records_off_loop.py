"""The bot's records on PostgreSQL are read off the event loop: a read that waits on the
database (the network, a lock another session holds) does not hold up other requests."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import psycopg

from flujo.bot.records import RECORDS_SCHEMA
from tests.support.bot import GOOD
from tests.support.bot_world import REPO, SPEC, World

HELD_S = 5.0
"""How long another session keeps the table locked (the read waits as long)."""


async def test_a_slow_records_read_does_not_hold_up_other_webhooks(
    postgres_world: World,
) -> None:
    url = postgres_world.settings.database_url
    assert url is not None
    sha = postgres_world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    await postgres_world.start()
    assert postgres_world.server is not None
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        """Another session locks the table a suggestion page reads, for HELD_S at most."""
        with psycopg.connect(url) as db, db.transaction():
            db.execute(f'LOCK TABLE "{RECORDS_SCHEMA}".proposals IN ACCESS EXCLUSIVE MODE')
            locked.set()
            release.wait(HELD_S)

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(10)
        page_url = postgres_world.server.make_url("/suggestions/acme/flows/no-such-token")
        async with aiohttp.ClientSession() as http:
            page = asyncio.ensure_future(http.get(page_url))
            await asyncio.sleep(0.5)  # the page's read now waits on the lock
            started = time.monotonic()
            status = await postgres_world.deliver("push", "payload", sha=sha)
            acknowledged_s = time.monotonic() - started
            page_waiting = not page.done()
            release.set()
            response = await asyncio.wait_for(page, 30)
            assert response.status == 404  # the read finished once the lock was gone
            response.release()
    finally:
        release.set()
        holder.join()
    assert status == 202  # accepted (queued)
    assert page_waiting, "the webhook was only acknowledged after the slow read finished"
    assert acknowledged_s < HELD_S / 2
    await postgres_world.settle()
