"""docker-compose.yml cannot run here (no Docker engine), so it is checked by reading: every file it
mounts exists, and every address one service uses to reach another names a defined service and a
port that service listens on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]


def listening_ports(name: str) -> set[int]:
    """Ports a service listens on inside the compose network."""
    service = SERVICES[name]
    ports = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    env = service.get("environment", {})
    ports |= {int(p) for p in re.findall(r"://[^:,]*:(\d+)", env.get("KAFKA_LISTENERS", ""))}
    if "NSM_METRICS_PORT" in env:
        ports.add(int(env["NSM_METRICS_PORT"]))
    return ports


def bind_mounts() -> list[tuple[str, str]]:
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                mounts.append((name, source))
    return mounts


def assert_reaches_a_service(address: str) -> None:
    host, port = address.rsplit(":", 1)
    assert host in SERVICES, f"{address}: no service named {host!r}"
    assert int(port) in listening_ports(host), f"{address}: {host} does not listen on {port}"


@pytest.mark.parametrize(("service", "source"), bind_mounts())
def test_every_mounted_path_exists(service: str, source: str):
    assert (ROOT / source).exists(), f"{service} mounts {source}, which is not in the repository"


def test_mounts_cover_prometheus_rules_and_grafana_provisioning():
    mounted = {source for _, source in bind_mounts()}
    assert {
        "./prometheus/prometheus.yml",
        "./prometheus/rules",
        "./grafana/provisioning",
    } <= mounted


def test_prometheus_scrapes_services_on_the_ports_they_listen_on():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert "worker:6066" in targets
    for target in targets:
        if not target.startswith("localhost:"):
            assert_reaches_a_service(target)


def test_prometheus_rule_files_are_inside_the_mounted_rules_folder():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    mount = next(v for v in SERVICES["prometheus"]["volumes"] if v.startswith("./prometheus/rules"))
    container_dir = mount.split(":")[1]
    assert all(path.startswith(container_dir + "/") for path in config["rule_files"])


def test_worker_and_grafana_reach_kafka_redis_and_prometheus():
    env = SERVICES["worker"]["environment"]
    assert_reaches_a_service(env["NSM_KAFKA_BOOTSTRAP"])
    assert_reaches_a_service(env["NSM_REDIS_URL"].split("//")[1].split("/")[0])
    datasources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert_reaches_a_service(datasources[0]["url"].split("//")[1])


def test_images_are_pinned_and_services_have_health_checks():
    for name, service in SERVICES.items():
        if "image" in service:
            tag = service["image"].rsplit(":", 1)
            assert len(tag) == 2 and tag[1] not in ("latest", ""), f"{name}: pin the image"
        else:
            assert (ROOT / service["build"] / "Dockerfile").exists()
        assert "healthcheck" in service, f"{name} has no health check"


def test_state_lives_in_named_volumes():
    named = set(COMPOSE["volumes"])
    for name in ("kafka", "redis", "prometheus", "grafana"):
        sources = {v.split(":", 1)[0] for v in SERVICES[name]["volumes"]}
        assert sources & named, f"{name} keeps its data in no named volume"


def test_the_worker_image_builds_the_native_core_with_pinned_images():
    """The worker needs nsm-native, which is not on PyPI: the image builds it from native/."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    images = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(images) == 2 and all(":" in i and not i.endswith(":latest") for i in images)
    copied = re.findall(r"^COPY (?:--from=\S+ )?(\S+)", dockerfile, flags=re.MULTILINE)
    assert "native" in copied and (ROOT / "native" / "Cargo.toml").exists()
    assert "pip install /wheels/*.whl ." in dockerfile
