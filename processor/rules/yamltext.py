"""YAML as people read it: keys in the order built, multi-line strings as literal blocks."""

from __future__ import annotations

from typing import Any

import yaml


class _ReadableDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # A repeated datasource reads better written out than as &id001 / *id001.
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Lists indented under their key, as in Prometheus's and Grafana's documentation.
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_ReadableDumper.add_representer(str, _str)


def yaml_text(data: Any, header: str = "") -> str:
    """`data` as YAML, after `header` written as comment lines."""
    # Wide lines: a folded PromQL expression or template is harder to read than a long one.
    body = yaml.dump(data, Dumper=_ReadableDumper, sort_keys=False, width=4096, allow_unicode=True)
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + body
