"""The `nsm` command. Each subcommand lives in its own module and is imported only when run,
so `nsm --help` and `nsm validate` stay fast and never load the Kafka stack."""

from __future__ import annotations

import importlib

import click

from processor import __version__

# name -> (module under processor.cli, one-line help shown by `nsm --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "Check metric definitions; print each problem as file:line."),
    "compute": ("compute", "Compute every metric from a file of events, no servers needed."),
    "worker": ("worker", "Run the streaming worker: Kafka -> exact windows in Redis -> /metrics."),
    "generate": ("generate", "Generate a realistic B2B SaaS event stream to a file or a topic."),
    "grafana": ("grafana", "Write Grafana dashboards and provisioning for the definitions."),
    "rules": ("rules", "Print Prometheus alert rules for the definitions."),
    "replay": ("replay", "Rebuild every metric from a topic into a namespace of its own."),
    "namespace": ("namespace", "List, compare, swap and drop namespaces of metric state."),
    "history": ("history", "Export a replay's history as OpenMetrics for Prometheus."),
    "explain": ("explain", "Explain which diagnostics and segments moved a metric."),
    "evaluate": ("evaluate", "Test north-star candidates on history; scorecard and HTML report."),
    "collect": ("collect", "Serve the Segment/RudderStack tracking API, producing to the topic."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module on first use (the lazy group pattern of click's docs)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"processor.cli.{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nsm")
def main() -> None:
    """NSM: exact rolling-window North Star Metrics from Kafka, in Redis, for Prometheus.

    Every option that takes a TIME reads the same forms: RFC 3339 with a zone
    (2026-11-22T10:00:00Z), a date (2026-11-22, midnight UTC), epoch milliseconds, a duration
    ago (7d, 12h) or now.
    """
