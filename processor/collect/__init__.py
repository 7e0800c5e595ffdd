"""`nsm collect`: an HTTP collector speaking the Segment/RudderStack tracking API.

`calls.py` reads a request's calls (pure), `app.py` answers requests and produces to Kafka,
`settings.py` and `telemetry.py` hold its options and Prometheus series. docs/segment.md
describes it for users.
"""
