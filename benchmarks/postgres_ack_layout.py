"""How the PostgreSQL acknowledgement stores a group of deliveries: the costs of its choices.

A PostgreSQL server (fsync on) is started in a temporary folder; each variant gets a
database of its own made by `PostgresQueue.open`, then changed as the variant says, and
the same groups of signed-push bodies (tests/github/webhooks/push/, 13 per group, as the
webhook benchmark's group commits) are stored through the acknowledgement's statement,
variants alternating round by round. Printed: this process's CPU (the bot's share: psycopg
encoding and sending) and the database server's, per delivery.

    .venv/bin/python benchmarks/postgres_ack_layout.py [--rounds 6] [--groups 150]
    .venv/bin/python benchmarks/postgres_ack_layout.py --rounds 30 \
        --variant 'lz4 in the row' --variant 'state index of every row'

Variants: `lz4 in the row` (as shipped), `out of the row` (`STORAGE EXTERNAL`: what a
server without lz4 keeps), `pglz in the row`, `five arrays` (the columns sent as one
array each instead of one JSON array and one binary value), `JSON objects` (one object
per delivery, its times as floats, read by `json_to_recordset`: the shape before),
`state index of every row` (as before: the acknowledgement writes an entry in it for
each delivery; shipped, the state index holds forwarded rows alone), `C collation` (the
delivery id compared bytewise) and `no NOTIFY` (the forwarder not woken).
CPU time is read from `/proc/PID/schedstat` (nanoseconds; `/proc/PID/stat`'s clock ticks
are too coarse for differences of a few microseconds per delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from benchmarks.webhook_ack import database_pids, payloads  # noqa: E402
from flujo.bot.postgres_queue import _ENQUEUE, PostgresQueue, group_parameters  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

ARRAYS = """
WITH stored AS (
    INSERT INTO flujo_deliveries (delivery_id, event, body, received_at, run_after)
    SELECT delivery_id, event, body, received_at, run_after FROM unnest(
        %(ids)s::text[], %(events)s::text[], %(bodies)b::bytea[], %(received)s::float8[],
        %(run_after)s::float8[]
    ) WITH ORDINALITY AS t(delivery_id, event, body, received_at, run_after, n)
    ORDER BY n
    ON CONFLICT (delivery_id) DO NOTHING
    RETURNING delivery_id
)
SELECT array(SELECT delivery_id FROM stored), pg_advisory_xact_lock(%(lock)s, %(group)s),
    pg_notify('flujo_inbox', '')
"""
OBJECTS = """
WITH stored AS (
    INSERT INTO flujo_deliveries (delivery_id, event, body, received_at, run_after)
    SELECT delivery_id, event, substring(%(bodies)b FROM start FOR length), received_at,
        run_after
    FROM ROWS FROM (json_to_recordset(%(deliveries)s::json) AS (
        delivery_id text, event text, start int, length int, received_at float8,
        run_after float8
    )) WITH ORDINALITY AS t(delivery_id, event, start, length, received_at, run_after, n)
    ORDER BY n
    ON CONFLICT (delivery_id) DO NOTHING
    RETURNING delivery_id
)
SELECT array(SELECT delivery_id FROM stored), pg_advisory_xact_lock(%(lock)s, %(group)s),
    pg_notify('flujo_inbox', '')
"""
NO_NOTIFY = _ENQUEUE.replace(", pg_notify('flujo_inbox', '')", "")
assert NO_NOTIFY != _ENQUEUE
VARIANTS = {
    "lz4 in the row": None,
    "out of the row": "ALTER TABLE flujo_deliveries ALTER COLUMN body SET STORAGE EXTERNAL",
    "pglz in the row": "ALTER TABLE flujo_deliveries ALTER COLUMN body SET COMPRESSION pglz",
    "five arrays": None,
    "JSON objects": None,
    "state index of every row": "DROP INDEX flujo_deliveries_forwarded;"
    " CREATE INDEX flujo_deliveries_state ON flujo_deliveries (state, id)",
    "C collation": 'ALTER TABLE flujo_deliveries ALTER COLUMN delivery_id TYPE text COLLATE "C"',
    "no NOTIFY": None,
}


def arrays(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    columns = list(zip(*rows, strict=True))
    names = ("ids", "events", "bodies", "received", "run_after")
    return {**{n: list(c) for n, c in zip(names, columns, strict=True)}, "lock": 1, "group": 1}


def objects(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    deliveries, start = [], 1
    for delivery_id, event, body, received_at, run_after in rows:
        deliveries.append(
            {
                "delivery_id": delivery_id,
                "event": event,
                "start": start,
                "length": len(body),
                "received_at": received_at,
                "run_after": run_after,
            }
        )
        start += len(body)
    bodies = b"".join(row[2] for row in rows)
    return {"deliveries": json.dumps(deliveries), "bodies": bodies, "lock": 1, "group": 1}


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes so far, to the nanosecond (Linux `schedstat`)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except OSError:  # gone
            continue
    return total / 1e9


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--groups", type=int, default=150)
    parser.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="measure only this variant (repeat for several; default: all)",
    )
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variant or VARIANTS}
    bodies = payloads()
    server = PostgresServer.start(fsync=True)
    try:
        urls = {}
        for name, change in variants.items():
            urls[name] = server.create_database()
            queue = PostgresQueue(urls[name])
            await queue.open()
            await queue.close()
            if change:
                with psycopg.connect(urls[name], autocommit=True) as db:
                    db.execute(change)
        spent = {name: [0.0, 0.0, 0] for name in variants}
        for _ in range(args.rounds):
            for name, url in urls.items():
                groups = [
                    [
                        (str(uuid.uuid4()), "push", bodies[n % len(bodies)], time.time(), 0.0)
                        for n in range(13)
                    ]
                    for _ in range(args.groups)
                ]
                db = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, prepare_threshold=0
                )
                pids = database_pids(server.folder)
                before = cpu_seconds([os.getpid()]), cpu_seconds(pids)
                for number, rows in enumerate(groups):
                    if name == "five arrays":
                        statement, params = ARRAYS, arrays(rows)
                    elif name == "JSON objects":
                        statement, params = OBJECTS, objects(rows)
                    else:
                        statement = NO_NOTIFY if name == "no NOTIFY" else _ENQUEUE
                        params = group_parameters(rows, 1, number)
                    await (await db.execute(statement, params)).fetchone()
                spent[name][0] += cpu_seconds([os.getpid()]) - before[0]
                spent[name][1] += cpu_seconds(pids) - before[1]
                spent[name][2] += 13 * args.groups
                await db.close()
    finally:
        server.stop()
    print(
        f"{args.rounds} alternating rounds x {args.groups} groups of 13 signed push deliveries, "
        "PostgreSQL 15 (fsync on, same machine)"
    )
    print(f"{'variant':<26} {'bot ms/delivery':>16} {'PG ms/delivery':>15} {'deliveries':>11}")
    for name, (bot, database, count) in spent.items():
        print(
            f"{name:<26} {bot / count * 1000:>16.4f} {database / count * 1000:>15.4f} {count:>11}"
        )


if __name__ == "__main__":
    asyncio.run(main())
