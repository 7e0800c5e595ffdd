"""Grafana dashboards and provisioning generated from the metric definitions (`nsm grafana`)."""
