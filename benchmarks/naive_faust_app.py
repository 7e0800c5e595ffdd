"""Baseline (b) of the worker benchmark: the naive faust agent, one Redis round trip per event.

Run as a script: consumes BENCH_TOPIC for BENCH_SECONDS after its first event, then writes
`<events> <seconds>` to BENCH_OUT.
"""

import os
import time

import faust
import orjson
import redis.asyncio as aioredis

topic_name = os.environ["BENCH_TOPIC"]
seconds = float(os.environ.get("BENCH_SECONDS", "20"))
app = faust.App(
    f"nsm-bench-naive-{os.environ['BENCH_RUN']}",
    broker=os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
topic = app.topic(topic_name, value_serializer="raw")
client = aioredis.Redis.from_url(os.environ.get("NSM_REDIS_URL", "redis://127.0.0.1:6379/0"))
key = f"nsm:bench-naive-{os.environ['BENCH_RUN']}:counts"
state = {"count": 0, "started": 0.0}


@app.agent(topic)
async def count(stream):  # type: ignore[no-untyped-def]
    async for value in stream:
        event = orjson.loads(value)
        await client.hincrby(key, f"{event.get('type')}|{event.get('account_id')}", 1)
        if state["count"] == 0:
            state["started"] = time.perf_counter()
        state["count"] += 1
        elapsed = time.perf_counter() - state["started"]
        if elapsed >= seconds:
            # faust turns print() into log lines; a file is the dependable way out.
            with open(os.environ["BENCH_OUT"], "w") as out:
                out.write(f"{state['count']} {elapsed:.3f}")
            await client.delete(key)
            os._exit(0)


if __name__ == "__main__":
    app.main()
