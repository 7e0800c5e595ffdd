"""Alert rules generated from the metric definitions (`nsm rules`): Prometheus rules, their
promtool unit tests, the equivalent Grafana-managed rules and the runbook."""
