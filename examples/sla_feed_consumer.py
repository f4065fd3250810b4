"""A frontend's SLA feed consumer: the latest SLA state of every ticket, kept in memory.

Run: ``.venv/bin/python examples/sla_feed_consumer.py [AMQP_URL] [BINDING]``
(default ``amqp://guest:guest@127.0.0.1:5672/`` and ``sla.#``). A narrower binding hears
tickets arrive and not leave: with ``sla.*.breached`` a ticket's resolution is routed
``sla.<department>.stopped``, with ``sla.okf.*`` a ticket reclassified to sof goes on
under ``sla.sof.<state>``. A list of tickets binds ``sla.#`` and filters on the body.

It binds a queue of its own to ``helpdesk.sla``, keeps per ticket the message with the
highest ``version`` and drops any other (a duplicate after a crash, or an older version
that arrived late from another engine), and prints each change: what a worklist or a
countdown on a ticket's page would redraw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aio_pika


async def follow(url: str, binding: str) -> None:
    latest: dict[str, dict[str, Any]] = {}
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "helpdesk.sla", aio_pika.ExchangeType.TOPIC, durable=True
        )
        # A durable, named queue would keep messages while this consumer is away; an
        # exclusive one suits a screen that reads the current state at start anyway.
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, binding)
        print(f"following helpdesk.sla ({binding})", flush=True)
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    body = json.loads(message.body)
                    known = latest.get(body["ticket_id"])
                    if known is not None and known["version"] >= body["version"]:
                        continue  # a duplicate or a stale version: nothing new
                    latest[body["ticket_id"]] = body
                    running = [c for c in body["clocks"] if c["running"]]
                    due = min((c["deadline"] for c in running if c["deadline"]), default=None)
                    print(
                        f"{body['ticket_id']} v{body['version']}: {body['state']}"
                        f" ({body['department']}, {body['priority']}), next deadline {due}",
                        flush=True,
                    )


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/"
    binding = sys.argv[2] if len(sys.argv) > 2 else "sla.#"
    asyncio.run(follow(url, binding))
