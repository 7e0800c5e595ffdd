"""`nsm grafana`: dashboards and Grafana provisioning generated from the metric definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from processor.cli.options import definitions_option, load_or_exit
from processor.cli.rules import alert_options, alert_settings
from processor.grafana.provisioning import DASHBOARDS_DIR, GrafanaSettings, grafana_files


@click.command(name="grafana")
@definitions_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into: dashboards/ and provisioning/ (e.g. grafana).",
)
@click.option(
    "--prometheus-url",
    default=GrafanaSettings.prometheus_url,
    show_default=True,
    help="Prometheus as Grafana reaches it, for the provisioned datasource.",
)
@click.option(
    "--dashboards-path",
    default=GrafanaSettings.dashboards_path,
    show_default=True,
    help="Where Grafana finds the dashboards folder, for the dashboards provider.",
)
@click.option(
    "--datasource-uid",
    default=GrafanaSettings.datasource_uid,
    show_default=True,
    help="Uid of the Prometheus datasource the Grafana-managed alert rules query: the one "
    "provisioned here, or your existing one's. Dashboards choose theirs in a variable.",
)
@alert_options
@click.pass_context
def command(
    ctx: click.Context,
    definitions_path: str,
    out_dir: Path,
    prometheus_url: str,
    dashboards_path: str,
    datasource_uid: str,
    **params: Any,
) -> None:
    """Write Grafana dashboards and provisioning for the metric definitions into OUT.

    OUT/dashboards/ gets an overview of the north stars, one drill-down dashboard per north star
    and a processor-health dashboard, each with a stable uid. OUT/provisioning/ gets the Prometheus
    datasource, the dashboards provider and Grafana-managed alert rules equivalent to `nsm rules`.
    Dashboards of north stars that no longer exist are removed.
    """
    catalog = load_or_exit(ctx, definitions_path)
    settings = GrafanaSettings(
        prometheus_url=prometheus_url,
        dashboards_path=dashboards_path,
        datasource_uid=datasource_uid,
    )
    files = grafana_files(catalog, alert_settings(params), settings)
    for stale in sorted((out_dir / DASHBOARDS_DIR).glob("nsm-*.json")):
        if stale.relative_to(out_dir).as_posix() not in files:
            stale.unlink()
            click.echo(f"removed {stale}")
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    click.echo(f"wrote {len(files)} files under {out_dir}")
