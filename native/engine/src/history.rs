//! Every metric's part at each of many times (ascending), over one or more engines' complete
//! states: the replay's history at every bucket boundary, and explain's and evaluate's values at
//! their checkpoints. Each gives exactly what evaluating as of that time gives.
//!
//! A metric's windows only move forward from one time to the next, so each condition and
//! aggregate slides over its entries once (`holds_over`, `parts_over`). Partitions combine as one
//! stream would: numbers add, distinct values unite, and an entity whose events reached several
//! partitions is one entity (its states merged).

use std::collections::BTreeMap;

use ahash::AHashMap;

use crate::condition::Row;
use crate::engine::{Engine, MetricKind};
use crate::entities::EntitiesMetric;
use crate::event::InputFormat;
use crate::spec::{CatalogSpec, SpecError};
use crate::summary::{Number, Part, Summary};
use crate::window::Span;

/// Per time: entities qualifying, and per segment field label -> (present, qualifying).
struct Tallies {
    total: Vec<i64>,
    labels: Vec<Vec<AHashMap<String, (i64, i64)>>>,
}

impl Tallies {
    fn new(times: usize, segments: usize) -> Tallies {
        Tallies {
            total: vec![0; times],
            labels: (0..times).map(|_| vec![AHashMap::new(); segments]).collect(),
        }
    }

    fn add(&mut self, metric: &EntitiesMetric, row: Row, spans: &[Span]) {
        // Only the times whose window can hold one of the entity's buckets.
        let buckets: Vec<i64> = metric.buckets(row).collect();
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else { return };
        let from = spans.partition_point(|s| s.last < *first);
        let to = spans.partition_point(|s| s.first <= *last);
        if from >= to {
            return;
        }
        for (i, outcome) in metric.evaluate_over(row, &spans[from..to]).into_iter().enumerate() {
            let Some((qualifies, labels)) = outcome else { continue };
            let at = from + i;
            let hit = i64::from(qualifies);
            self.total[at] += hit;
            for (counts, label) in self.labels[at].iter_mut().zip(labels.iter()) {
                match counts.get_mut(label.as_str()) {
                    Some(c) => {
                        c.0 += 1;
                        c.1 += hit;
                    }
                    None => {
                        counts.insert(label.to_string(), (1, hit));
                    }
                }
            }
        }
    }

    fn parts(self) -> Vec<Part> {
        self.total
            .into_iter()
            .zip(self.labels)
            .map(|(total, labels)| Part::Additive {
                total: Number::Int(total),
                breakdowns: labels
                    .into_iter()
                    .map(|m| {
                        m.into_iter()
                            .map(|(l, (_, q))| (l, Number::Int(q)))
                            .collect::<BTreeMap<_, _>>()
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The summary of `engines` (disjoint partitions of one catalogue, `spec`) at each time.
pub fn sweep(
    spec: &CatalogSpec,
    engines: &[&Engine],
    times: &[i64],
) -> Result<Vec<Summary>, SpecError> {
    let mut summaries: Vec<Summary> =
        times.iter().map(|t| Summary { as_of: *t, parts: Vec::new() }).collect();
    let Some(first) = engines.first() else { return Ok(summaries) };
    let mut scratch: Option<Engine> = None;
    for info in &first.metrics {
        let Some(window) = info.window else {
            summaries.iter_mut().for_each(|s| s.parts.push(None));
            continue;
        };
        let spans: Vec<Span> = times.iter().map(|t| window.span(*t)).collect();
        let parts: Vec<Part> = match info.kind {
            MetricKind::Entities(m) => {
                let mut tallies = Tallies::new(times.len(), info.segments.len());
                let t = first.table_of(m);
                let mut owners: AHashMap<&str, Vec<(usize, Row)>> = AHashMap::new();
                for (e, engine) in engines.iter().enumerate() {
                    let table = &engine.tables[t];
                    for row in table.live_rows() {
                        if engine.entities[m].has(row) {
                            owners
                                .entry(table.label(row).expect("a live row"))
                                .or_default()
                                .push((e, row));
                        }
                    }
                }
                for (label, held) in owners {
                    if let [(e, row)] = held[..] {
                        tallies.add(&engines[e].entities[m], row, &spans);
                        continue;
                    }
                    // One entity in several partitions: its states merged into a scratch row.
                    let engine = match &mut scratch {
                        Some(engine) => engine,
                        None => scratch.insert(Engine::new(spec, InputFormat::Nsm)?),
                    };
                    let row = engine.tables[t].row(label);
                    engine.entities[m].reserve(engine.tables[t].rows());
                    for (e, r) in held {
                        let mut bytes = Vec::new();
                        engines[e].entities[m].encode(r, &mut bytes);
                        engine.entities[m]
                            .decode(row, &mut crate::codec::Reader::new(&bytes))
                            .map_err(|e| SpecError::new(e.to_string()))?;
                    }
                    tallies.add(&engine.entities[m], row, &spans);
                    engine.entities[m].clear(row);
                }
                tallies.parts()
            }
            MetricKind::Aggregate(a) => {
                let mut merged: Vec<Part> = Vec::new();
                for engine in engines {
                    let mut parts = Vec::with_capacity(spans.len());
                    engine.aggregates[a].kind.parts_over(&spans, &mut parts);
                    if merged.is_empty() {
                        merged = parts;
                    } else {
                        for (mine, theirs) in merged.iter_mut().zip(&parts) {
                            mine.merge(theirs);
                        }
                    }
                }
                merged
            }
            MetricKind::Formula { .. } => unreachable!("formulas have no window"),
        };
        for (summary, part) in summaries.iter_mut().zip(parts) {
            summary.parts.push(Some(part));
        }
    }
    Ok(summaries)
}
