"""Rules over the whole catalogue: names, the KPI hierarchy, backups, formulas, cycles, buckets.

Each rule adds problems and carries on, so one run reports everything. Errors make the definitions
unusable; warnings point at a KPI hierarchy that is off but still computable.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from math import gcd

from processor.definitions.formula import Formula, FormulaError, parse_formula
from processor.definitions.loader import Declared
from processor.definitions.messages import did_you_mean
from processor.definitions.problems import Problem, Severity
from processor.durations import format_duration_ms

MAX_NORTH_STARS = 5

# Event types whose raw count grows with traffic rather than with value delivered. Type names are
# compared with everything but letters removed, so `user.signed_up`, `SignUp` and `page_view` match.
_VANITY_ENDINGS = (
    "signup",
    "signups",
    "signedup",
    "register",
    "registered",
    "registration",
    "login",
    "logins",
    "loggedin",
    "signin",
    "signedin",
    "pageview",
    "pageviews",
    "pageviewed",
    "sessionstart",
    "sessionstarted",
)


def is_vanity_event(event_type: str) -> bool:
    letters = re.sub(r"[^a-z]", "", event_type.lower())
    return bool(letters) and letters.endswith(_VANITY_ENDINGS)


def _article(tier: str) -> str:
    return {"north_star": "a north star", "diagnostic": "a diagnostic"}.get(tier, "granular")


def check_rules(declared: Sequence[Declared], rejected: Collection[str] = ()) -> list[Problem]:
    """Every cross-metric problem of `declared`; names in `rejected` exist but failed the model."""
    return _Rules(declared, rejected).run()


class _Rules:
    def __init__(self, declared: Sequence[Declared], rejected: Collection[str]) -> None:
        self.declared = declared
        self.rejected = set(rejected)
        self.by_name: dict[str, Declared] = {}
        for item in declared:
            self.by_name.setdefault(item.metric.name, item)
        self.formulas: dict[str, Formula] = {}
        self.problems: list[Problem] = []

    def run(self) -> list[Problem]:
        self._unique_names()
        for item in self.declared:
            self._hierarchy(item)
            self._backup(item)
            self._formula(item)
            self._bucket(item)
        self._cycles("parent", {d.metric.name: self._parent_edges(d) for d in self.declared})
        self._cycles(
            "formula",
            {name: [op for op in f.operands if op != name] for name, f in self.formulas.items()},
        )
        self._north_star_warnings()
        return self.problems

    def _add(self, item: Declared, key: str, text: str, severity: Severity = "error") -> None:
        message = f"metric {item.metric.name}: {text}"
        self.problems.append(Problem(item.file, item.line_of(key), message, severity))

    def _lookup(self, item: Declared, key: str, name: str) -> Declared | None:
        """The metric `name` names; reported when missing (unless it failed the model)."""
        found = self.by_name.get(name)
        if found is None and name not in self.rejected:
            self._add(
                item,
                key,
                f"{key} {name!r} is not a defined metric{did_you_mean(name, list(self.by_name))}: "
                "name a metric defined in the definitions",
            )
        return found

    def _unique_names(self) -> None:
        for item in self.declared:
            first = self.by_name[item.metric.name]
            if first is not item:
                self._add(
                    item,
                    "name",
                    f"the name is already used by the metric at {first.file}:{first.line}: "
                    "names are unique across all files; rename one of them",
                )

    def _hierarchy(self, item: Declared) -> None:
        metric = item.metric
        if metric.tier == "north_star":
            if metric.parent is not None:
                self._add(
                    item,
                    "parent",
                    "a north star has no parent: remove parent, or make this metric a diagnostic",
                )
            return
        wanted = "north star" if metric.tier == "diagnostic" else "diagnostic or north star"
        if metric.parent is None:
            # The contract only warns where the hierarchy is off; the metric still computes.
            self._add(
                item,
                "tier",
                f"{_article(metric.tier)} metric without a parent stays outside the KPI "
                f"hierarchy: set parent to the {wanted} it explains",
                "warning",
            )
            return
        if metric.parent == metric.name:
            self._add(
                item,
                "parent",
                f"parent is the metric itself: set parent to the {wanted} it explains",
            )
            return
        parent = self._lookup(item, "parent", metric.parent)
        if parent is None:
            return
        allowed = ("north_star",) if metric.tier == "diagnostic" else ("north_star", "diagnostic")
        if parent.metric.tier not in allowed:
            self._add(
                item,
                "parent",
                f"{_article(metric.tier)} metric's parent must be a {wanted}, but "
                f"{metric.parent!r} is {_article(parent.metric.tier)}: set parent to a {wanted}, "
                "or change the tiers",
            )

    def _backup(self, item: Declared) -> None:
        metric = item.metric
        if metric.backup_for is None:
            return
        if metric.tier != "north_star":
            self._add(
                item,
                "backup_for",
                "backup_for is only for north stars: make this metric a north star "
                "(tier: north_star) or remove backup_for",
            )
            return
        if metric.backup_for == metric.name:
            self._add(
                item,
                "backup_for",
                "backup_for names the metric itself: name the north star this one stands in for",
            )
            return
        target = self._lookup(item, "backup_for", metric.backup_for)
        if target is not None and target.metric.tier != "north_star":
            self._add(
                item,
                "backup_for",
                f"backup_for must name a north star, but {metric.backup_for!r} is "
                f"{_article(target.metric.tier)}: name the north star this one stands in for",
            )

    def _formula(self, item: Declared) -> None:
        metric = item.metric
        if metric.formula is None:
            return
        try:
            formula = parse_formula(metric.formula)
        except FormulaError as exc:
            self._add(item, "formula", str(exc))
            return
        if not formula.operands:
            self._add(
                item,
                "formula",
                f"formula {formula.text!r} uses no metric: combine other "
                "metrics, for example deals_won / opportunities_created",
            )
            return
        self.formulas[metric.name] = formula
        for name in formula.operands:
            if name == metric.name:
                self._add(
                    item,
                    "formula",
                    "the formula uses the metric itself: build it from other metrics",
                )
                continue
            operand = self._lookup(item, "formula", name)
            if operand is not None and operand.metric.window_ms != metric.window_ms:
                self._add(
                    item,
                    "formula",
                    f"formula operand {name!r} has window {operand.metric.window} but this "
                    f"metric's window is {metric.window}: a formula combines metrics of the same "
                    f"window; use operands with window {metric.window}",
                )
        for segment in metric.segments:
            lacking = [
                name
                for name in formula.operands
                if name in self.by_name and segment not in self._segments_of(name, set())
            ]
            if lacking:
                self._add(
                    item,
                    "segments",
                    f"segment {segment!r} is not a segment of {', '.join(lacking)}: a formula "
                    f"breaks down only by fields every operand has; add {segment!r} to their "
                    "segments or remove it here",
                )

    def _segments_of(self, name: str, visiting: set[str]) -> set[str]:
        """The fields a metric breaks down by: a formula without its own, those of every operand."""
        metric = self.by_name[name].metric
        if metric.segments or metric.formula is None:
            return set(metric.segments)
        if name in visiting:  # a formula cycle, reported on its own
            return set()
        try:
            operands = [n for n in parse_formula(metric.formula).operands if n in self.by_name]
        except FormulaError:
            return set()
        if not operands:
            return set()
        visiting.add(name)
        shared = set.intersection(*(self._segments_of(n, visiting) for n in operands))
        visiting.discard(name)
        return shared

    def _bucket(self, item: Declared) -> None:
        metric = item.metric
        window, bucket = metric.window_ms, metric.bucket_ms
        if window % bucket == 0:
            return
        example = format_duration_ms(gcd(window, bucket))
        if "bucket" not in metric.model_fields_set:
            self._add(
                item,
                "window",
                f"window {metric.window} is not a whole number of the "
                f"default {metric.bucket} buckets: set bucket: {example}, or change the window",
            )
        elif bucket > window:
            self._add(
                item,
                "bucket",
                f"bucket {metric.bucket} is longer than window "
                f"{metric.window}: use a bucket that divides the window, for example {example}",
            )
        else:
            self._add(
                item,
                "bucket",
                f"bucket {metric.bucket} does not divide window "
                f"{metric.window}: use a bucket that divides it, for example {example}",
            )

    def _parent_edges(self, item: Declared) -> list[str]:
        parent = item.metric.parent
        return [parent] if parent is not None and parent != item.metric.name else []

    def _cycles(self, kind: str, edges: dict[str, list[str]]) -> None:
        """Report each cycle once, at the first of its metrics in file order."""
        reported: set[frozenset[str]] = set()
        order = {d.metric.name: (d.file, d.line) for d in reversed(self.declared)}
        for start in edges:
            cycle = _cycle_from(start, edges)
            if cycle is None or frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            first = min(cycle, key=lambda name: order[name])
            at = cycle.index(first)
            path = [*cycle[at:], *cycle[:at], first]
            key = "parent" if kind == "parent" else "formula"
            what = "parent links" if kind == "parent" else "formulas"
            self._add(
                self.by_name[first],
                key,
                f"{what} form a cycle: {' -> '.join(path)}: break it by changing one of them",
            )

    def _north_star_warnings(self) -> None:
        primaries = [
            d
            for d in self.declared
            if d.metric.tier == "north_star" and d.metric.backup_for is None
        ]
        backed = {d.metric.backup_for for d in self.declared if d.metric.backup_for}
        if len(primaries) > MAX_NORTH_STARS:
            names = ", ".join(d.metric.name for d in primaries)
            self._add(
                primaries[MAX_NORTH_STARS],
                "tier",
                f"{len(primaries)} north stars ({names}; backups not counted): a team steers by "
                f"at most {MAX_NORTH_STARS}; make the others diagnostics of one of them",
                "warning",
            )
        for item in primaries:
            if item.metric.name not in backed:
                self._add(
                    item,
                    "name",
                    "north star without a backup: add a north star with backup_for: "
                    f"{item.metric.name}, to steer by when this one cannot be trusted",
                    "warning",
                )
        for item in self.declared:
            aggregate = item.metric.aggregate
            if (
                item.metric.tier == "north_star"
                and aggregate is not None
                and aggregate.kind == "count"
                and all(is_vanity_event(t) for t in aggregate.event)
            ):
                self._add(
                    item,
                    "aggregate",
                    f"north star is a vanity count of {', '.join(aggregate.event)} events, which "
                    "grows with traffic rather than with value delivered: count the accounts "
                    "that reach value instead (entities with conditions)",
                    "warning",
                )


def _cycle_from(start: str, edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle reachable from `start` (depth first), as the list of its metrics, or None."""
    stack: list[str] = []
    on_stack: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        stack.append(name)
        on_stack.add(name)
        for target in edges.get(name, []):
            if target in on_stack:
                return stack[stack.index(target) :]
            if target in edges and target not in done:
                found = visit(target)
                if found is not None:
                    return found
        stack.pop()
        on_stack.discard(name)
        done.add(name)
        return None

    return visit(start)
