//! Cost of generations that arrive without one, from the `model_prices` table.
//!
//! The table is small and changes rarely: it is loaded whole and refreshed in the background,
//! so pricing an event never waits on PostgreSQL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agenttrace_schemas::event::{Cost, Usage};
use regex::{Regex, RegexBuilder};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// USD per million tokens, per usage key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

impl Prices {
    pub fn cost(&self, usage: &Usage) -> Cost {
        let part = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1e6;
        let input = part(usage.input_tokens, self.input);
        let output = part(usage.output_tokens, self.output);
        let cache_read = part(usage.cache_read_input_tokens, self.cache_read);
        let cache_write = part(usage.cache_creation_input_tokens, self.cache_write);
        Cost {
            input: Some(input),
            output: Some(output),
            cache_read: Some(cache_read),
            cache_write: Some(cache_write),
            total: Some(input + output + cache_read + cache_write),
        }
    }
}

/// One row of the price table: whom it applies to and from when.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceRow {
    pub pattern: String,
    pub prices: Prices,
    /// A project's own price, overriding the defaults for it; `None` for everyone.
    pub project: Option<Uuid>,
    /// When the price takes effect, in microseconds since the epoch.
    pub valid_from_us: i64,
}

impl PriceRow {
    /// What [`PriceRow::from_row`] reads, selected from `model_prices`.
    pub const COLUMNS: &'static str = "model_pattern, input_per_mtok::float8 AS input_per_mtok, \
        output_per_mtok::float8 AS output_per_mtok, cache_read_per_mtok::float8 AS cache_read_per_mtok, \
        cache_write_per_mtok::float8 AS cache_write_per_mtok, project_id, \
        (extract(epoch FROM valid_from) * 1000000)::int8 AS valid_from_us";

    pub fn from_row(row: &Row) -> Self {
        PriceRow {
            pattern: row.get("model_pattern"),
            prices: Prices {
                input: row.get("input_per_mtok"),
                output: row.get("output_per_mtok"),
                cache_read: row.get("cache_read_per_mtok"),
                cache_write: row.get("cache_write_per_mtok"),
            },
            project: row.get("project_id"),
            valid_from_us: row.get("valid_from_us"),
        }
    }
}

#[derive(Debug)]
struct Entry {
    regex: Regex,
    prices: Prices,
    project: Option<Uuid>,
    valid_from_us: i64,
}

/// Model patterns in match order: a project's own prices first, then by priority, then the
/// newest first. A generation is priced by the first entry that matches its model, applies to
/// its project and had taken effect when it started.
#[derive(Debug, Default)]
pub struct PriceTable {
    entries: Vec<Entry>,
}

impl PriceTable {
    /// `rows` in match order.
    pub fn from_rows(rows: impl IntoIterator<Item = PriceRow>) -> Self {
        let entries = rows
            .into_iter()
            .filter_map(|row| {
                let pattern = &row.pattern;
                match RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .case_insensitive(true)
                    .build()
                {
                    Ok(regex) => Some(Entry {
                        regex,
                        prices: row.prices,
                        project: row.project,
                        valid_from_us: row.valid_from_us,
                    }),
                    Err(error) => {
                        tracing::warn!(%pattern, %error, "skipping a model price with an invalid pattern");
                        None
                    }
                }
            })
            .collect();
        PriceTable { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The prices for `model` in `project` at `at_us`.
    pub fn prices_for(&self, project: Uuid, at_us: i64, model: &str) -> Option<&Prices> {
        self.in_effect(&self.matching(project, model), at_us)
    }

    /// The cost of a generation's usage, when its model has a price.
    pub fn cost(&self, project: Uuid, at_us: i64, model: &str, usage: &Usage) -> Option<Cost> {
        self.prices_for(project, at_us, model)
            .map(|prices| prices.cost(usage))
    }

    /// The entries that can price `model` in `project` (at some time), in match order.
    fn matching(&self, project: Uuid, model: &str) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| {
                let entry = &self.entries[i];
                entry.project.is_none_or(|p| p == project) && entry.regex.is_match(model)
            })
            .collect()
    }

    /// The first of `matching` (entries in match order) that had taken effect at `at_us`.
    fn in_effect(&self, matching: &[usize], at_us: i64) -> Option<&Prices> {
        matching
            .iter()
            .map(|&i| &self.entries[i])
            .find(|entry| entry.valid_from_us <= at_us)
            .map(|entry| &entry.prices)
    }

    pub async fn load(client: &impl GenericClient) -> Result<Self, tokio_postgres::Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM model_prices
                     ORDER BY project_id IS NULL, priority DESC, valid_from DESC, model_pattern",
                    PriceRow::COLUMNS
                ),
                &[],
            )
            .await?;
        Ok(PriceTable::from_rows(rows.iter().map(PriceRow::from_row)))
    }
}

/// The price table for a run of lookups (one batch, one re-pricing pass) that remembers which
/// entries match each project and model it meets: a batch names a handful of models, so each
/// is matched against the patterns once rather than once per generation.
#[derive(Debug, Clone)]
pub struct PriceMatcher {
    table: Arc<PriceTable>,
    matching: RefCell<HashMap<Uuid, HashMap<String, Vec<usize>>>>,
}

impl PriceMatcher {
    pub fn new(table: Arc<PriceTable>) -> Self {
        PriceMatcher {
            table,
            matching: RefCell::default(),
        }
    }

    /// What [`PriceTable::cost`] answers, with the pattern matching remembered.
    pub fn cost(&self, project: Uuid, at_us: i64, model: &str, usage: &Usage) -> Option<Cost> {
        let mut matching = self.matching.borrow_mut();
        let models = matching.entry(project).or_default();
        if !models.contains_key(model) {
            models.insert(model.to_owned(), self.table.matching(project, model));
        }
        self.table
            .in_effect(&models[model], at_us)
            .map(|prices| prices.cost(usage))
    }
}

/// The current price table, swapped whole on refresh.
#[derive(Clone, Default)]
pub struct PriceCache {
    current: Arc<RwLock<Arc<PriceTable>>>,
}

impl PriceCache {
    pub fn get(&self) -> Arc<PriceTable> {
        self.current.read().expect("price cache lock").clone()
    }

    pub fn set(&self, table: PriceTable) {
        *self.current.write().expect("price cache lock") = Arc::new(table);
    }

    /// Reloads the table every `interval`; on failure keeps the previous one.
    pub fn spawn_refresh(&self, pool: deadpool_postgres::Pool, interval: Duration) {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                match pool.get().await {
                    Ok(client) => match PriceTable::load(&**client).await {
                        Ok(table) => cache.set(table),
                        Err(error) => tracing::warn!(%error, "refreshing model prices failed"),
                    },
                    Err(error) => tracing::warn!(%error, "refreshing model prices: no PostgreSQL connection"),
                }
                tokio::time::sleep(interval).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: Uuid = Uuid::from_u128(7);
    const NOW: i64 = 1_764_000_000_000_000;

    fn prices(input: f64) -> Prices {
        Prices {
            input,
            output: input * 5.0,
            cache_read: input / 10.0,
            cache_write: input * 1.25,
        }
    }

    fn row(pattern: &str, input: f64) -> PriceRow {
        PriceRow {
            pattern: pattern.to_owned(),
            prices: prices(input),
            project: None,
            valid_from_us: 0,
        }
    }

    fn table() -> PriceTable {
        PriceTable::from_rows([
            row("(anthropic[./])?claude-opus-4-5.*", 5.0),
            row("(anthropic[./])?claude-opus-4(-1)?([-@].*)?", 15.0),
            row("(openai/)?gpt-4o(-\\d{4}-\\d{2}-\\d{2})?", 2.5),
            row("(openai/)?gpt-4o-mini(-\\d{4}-\\d{2}-\\d{2})?", 0.15),
            row("([broken", 1.0),
        ])
    }

    #[test]
    fn matches_snapshots_prefixes_and_priority() {
        let table = table();
        let input = |model: &str| table.prices_for(PROJECT, NOW, model).map(|p| p.input);
        assert_eq!(table.len(), 4, "the invalid pattern is skipped");
        assert_eq!(input("claude-opus-4-5-20251101"), Some(5.0));
        assert_eq!(input("anthropic/claude-opus-4-1-20250805"), Some(15.0));
        assert_eq!(input("GPT-4o-2024-08-06"), Some(2.5));
        assert_eq!(input("gpt-4o-mini"), Some(0.15));
        assert_eq!(input("gpt-4o-realtime"), None);
        assert_eq!(input("llama-3"), None);
    }

    #[test]
    fn a_projects_own_price_and_the_date_a_price_takes_effect() {
        let table = PriceTable::from_rows([
            PriceRow {
                project: Some(PROJECT),
                valid_from_us: NOW,
                ..row("gpt-4o", 1.0)
            },
            PriceRow {
                valid_from_us: NOW,
                ..row("gpt-4o", 2.0)
            },
            row("gpt-4o", 2.5),
        ]);
        let input = |project, at| table.prices_for(project, at, "gpt-4o").map(|p| p.input);
        assert_eq!(input(PROJECT, NOW), Some(1.0));
        assert_eq!(input(PROJECT, NOW - 1), Some(2.5), "before it took effect");
        assert_eq!(
            input(Uuid::nil(), NOW),
            Some(2.0),
            "another project gets the default"
        );
    }

    #[test]
    fn the_matcher_answers_as_the_table_does() {
        let table = Arc::new(PriceTable::from_rows([
            PriceRow {
                project: Some(PROJECT),
                valid_from_us: NOW,
                ..row("gpt-4o", 1.0)
            },
            row("(openai/)?gpt-4o(-\\d{4}-\\d{2}-\\d{2})?", 2.5),
            row("claude-.*", 3.0),
        ]));
        let matcher = PriceMatcher::new(table.clone());
        let usage = Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        };
        // Asked twice each, so the second answer comes from what the first remembered.
        for _ in 0..2 {
            for project in [PROJECT, Uuid::nil()] {
                for at in [NOW - 1, NOW] {
                    for model in ["gpt-4o", "openai/gpt-4o-2024-08-06", "claude-x", "llama-3"] {
                        assert_eq!(
                            matcher.cost(project, at, model, &usage),
                            table.cost(project, at, model, &usage),
                            "{project} {at} {model}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn computes_cost_per_usage_key() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_input_tokens: 2_000_000,
            cache_creation_input_tokens: 0,
        };
        let cost = table().cost(PROJECT, NOW, "gpt-4o", &usage).unwrap();
        assert_eq!(cost.input, Some(2.5));
        assert_eq!(cost.output, Some(1.25));
        assert_eq!(cost.cache_read, Some(0.5));
        assert_eq!(cost.total, Some(4.25));
    }

    /// The seeded default prices (0002, and 0024's models of December 2026) as the ETL loads
    /// them: in match order (priority, then the newest first).
    fn seeded() -> PriceTable {
        let row = Regex::new(
            r"\('([^']+)',\s*'\w+',\s*([\d.]+),\s*([\d.]+),\s*([\d.]+),\s*([\d.]+),\s*(\d+)(?:,\s*'([^']+)')?\)",
        )
        .unwrap();
        let mut rows: Vec<(i64, PriceRow)> = [
            include_str!("../../../migrations/postgres/0002_batches_and_prices.sql"),
            include_str!("../../../migrations/postgres/0024_current_model_prices.sql"),
        ]
        .iter()
        .flat_map(|sql| row.captures_iter(sql))
        .map(|c| {
            let price = |i: usize| c[i].parse::<f64>().unwrap();
            let valid_from = c.get(7).map_or(0, |t| {
                chrono::DateTime::parse_from_rfc3339(t.as_str())
                    .unwrap()
                    .timestamp_micros()
            });
            let prices = Prices {
                input: price(2),
                output: price(3),
                cache_read: price(4),
                cache_write: price(5),
            };
            let row = PriceRow {
                pattern: c[1].to_owned(),
                prices,
                project: None,
                valid_from_us: valid_from,
            };
            (c[6].parse().unwrap(), row)
        })
        .collect();
        assert!(rows.len() > 30, "{} seeded rows", rows.len());
        rows.sort_by(|(p1, a), (p2, b)| {
            (p2, b.valid_from_us)
                .cmp(&(p1, a.valid_from_us))
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        let table = PriceTable::from_rows(rows.into_iter().map(|(_, row)| row));
        assert_eq!(table.len(), 38, "every seeded pattern compiles");
        table
    }

    #[test]
    fn the_seed_prices_the_models_agents_use() {
        let table = seeded();
        let december = 1_796_515_200_000_000; // 2026-12-06
        let price = |model: &str| {
            table
                .prices_for(PROJECT, december, model)
                .map(|p| (p.input, p.output))
        };
        for (model, expected) in [
            ("claude-opus-4-6", Some((5.0, 25.0))),
            ("claude-opus-4-8-20260528", Some((5.0, 25.0))),
            ("claude-opus-4-7[1m]", Some((5.0, 25.0))),
            ("claude-opus-4-7@20260301", Some((5.0, 25.0))),
            ("anthropic/claude-opus-4-1-20250805", Some((15.0, 75.0))),
            ("claude-opus-4-20250514", Some((15.0, 75.0))),
            ("claude-opus-5", Some((5.0, 25.0))),
            ("claude-opus-5-5", Some((4.0, 20.0))),
            ("claude-sonnet-4-5-20250929", Some((3.0, 15.0))),
            ("claude-sonnet-4-6", Some((3.0, 15.0))),
            ("claude-sonnet-5", Some((2.0, 10.0))),
            ("claude-sonnet-5-5", Some((2.0, 10.0))),
            ("claude-haiku-4-5-20251001", Some((1.0, 5.0))),
            ("claude-haiku-5-5", Some((0.1, 0.5))),
            ("gpt-5", Some((1.25, 10.0))),
            ("gpt-5-codex", Some((1.25, 10.0))),
            ("gpt-5-codex-mini", Some((0.25, 2.0))),
            ("gpt-5.1-codex-max", Some((1.25, 10.0))),
            ("gpt-5.1-codex-mini", Some((0.25, 2.0))),
            ("openai/gpt-5.2-2025-12-11", Some((1.75, 14.0))),
            ("gpt-5.2-codex", Some((1.75, 14.0))),
            ("gpt-5.3-codex", Some((1.75, 14.0))),
            ("gpt-5.4", Some((2.5, 15.0))),
            ("gpt-5.4-mini", Some((0.75, 4.5))),
            ("gpt-5.4-nano", Some((0.2, 1.25))),
            ("gpt-5.5", Some((5.0, 30.0))),
            ("gpt-5.6-sol", Some((5.0, 30.0))),
            ("gpt-5.6-terra", Some((2.0, 12.0))),
            ("gpt-5.6-luna", Some((0.2, 1.2))),
            ("gpt-5.5-pro", None),
            ("claude-opus-5-7", None),
        ] {
            assert_eq!(price(model), expected, "{model}");
        }
        let cache = |model: &str, at: i64| {
            table
                .prices_for(PROJECT, at, model)
                .map(|p| (p.cache_read, p.cache_write))
        };
        assert_eq!(cache("claude-opus-4-6", december), Some((0.5, 6.25)));
        assert_eq!(cache("gpt-5.6-sol", december), Some((0.5, 6.25)));
        assert_eq!(cache("gpt-5.3-codex", december), Some((0.175, 0.0)));
        // Sonnet 5.5's cache hits were cut on 2026-10-07.
        let october_7 = 1_791_331_200_000_000;
        assert_eq!(cache("claude-sonnet-5-5", october_7 - 1), Some((0.2, 2.5)));
        assert_eq!(cache("claude-sonnet-5-5", october_7), Some((0.1, 2.5)));
    }
}
