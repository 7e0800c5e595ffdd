"""A minimal faust app: consumes PROBE_EXPECT messages from PROBE_TOPIC in batches, then exits.

Run as a script by the service tests to prove that faust-streaming's client works with the
broker version the local stack runs.
"""

import os

import faust

app = faust.App(
    f"probe-{os.environ['PROBE_TOPIC']}",
    broker=os.environ["PROBE_BROKER"],
    store="memory://",
    topic_partitions=2,
)
topic = app.topic(os.environ["PROBE_TOPIC"], value_serializer="raw")
expected = int(os.environ["PROBE_EXPECT"])
consumed: list[bytes] = []


@app.agent(topic)
async def consume(stream):  # type: ignore[no-untyped-def]
    async for batch in stream.take(100, within=1):
        consumed.extend(batch)
        if len(consumed) >= expected:
            print(f"PROBE consumed {len(consumed)}", flush=True)
            os._exit(0)


if __name__ == "__main__":
    app.main()
