//! Cost of generations that arrive without one, from the `model_prices` table.
//!
//! The table is small and changes rarely: it is loaded whole and refreshed in the background,
//! so pricing an event never waits on PostgreSQL.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use agenttrace_schemas::event::{Cost, Usage};
use regex::{Regex, RegexBuilder};
use tokio_postgres::GenericClient;

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

/// Model patterns in match order (highest priority, then newest first).
#[derive(Debug, Default)]
pub struct PriceTable {
    entries: Vec<(Regex, Prices)>,
}

impl PriceTable {
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Prices)>) -> Self {
        let entries = rows
            .into_iter()
            .filter_map(|(pattern, prices)| {
                match RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .case_insensitive(true)
                    .build()
                {
                    Ok(regex) => Some((regex, prices)),
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

    pub fn prices_for(&self, model: &str) -> Option<&Prices> {
        self.entries
            .iter()
            .find(|(regex, _)| regex.is_match(model))
            .map(|(_, prices)| prices)
    }

    /// The cost of a generation's usage, when its model has a price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        self.prices_for(model).map(|prices| prices.cost(usage))
    }

    pub async fn load(client: &impl GenericClient) -> Result<Self, tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT model_pattern, input_per_mtok::float8, output_per_mtok::float8,
                        cache_read_per_mtok::float8, cache_write_per_mtok::float8
                 FROM model_prices WHERE valid_from <= now()
                 ORDER BY priority DESC, valid_from DESC, model_pattern",
                &[],
            )
            .await?;
        Ok(PriceTable::from_rows(rows.iter().map(|row| {
            (
                row.get(0),
                Prices {
                    input: row.get(1),
                    output: row.get(2),
                    cache_read: row.get(3),
                    cache_write: row.get(4),
                },
            )
        })))
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

    fn table() -> PriceTable {
        let prices = |input| Prices {
            input,
            output: input * 5.0,
            cache_read: input / 10.0,
            cache_write: input * 1.25,
        };
        PriceTable::from_rows([
            ("(anthropic[./])?claude-opus-4-5.*".to_owned(), prices(5.0)),
            (
                "(anthropic[./])?claude-opus-4(-1)?([-@].*)?".to_owned(),
                prices(15.0),
            ),
            ("(openai/)?gpt-4o(-\\d{4}-\\d{2}-\\d{2})?".to_owned(), prices(2.5)),
            (
                "(openai/)?gpt-4o-mini(-\\d{4}-\\d{2}-\\d{2})?".to_owned(),
                prices(0.15),
            ),
            ("([broken".to_owned(), prices(1.0)),
        ])
    }

    #[test]
    fn matches_snapshots_prefixes_and_priority() {
        let table = table();
        assert_eq!(table.len(), 4, "the invalid pattern is skipped");
        assert_eq!(table.prices_for("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(
            table
                .prices_for("anthropic/claude-opus-4-1-20250805")
                .unwrap()
                .input,
            15.0
        );
        assert_eq!(table.prices_for("GPT-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(table.prices_for("gpt-4o-mini").unwrap().input, 0.15);
        assert!(table.prices_for("gpt-4o-realtime").is_none());
        assert!(table.prices_for("llama-3").is_none());
    }

    #[test]
    fn computes_cost_per_usage_key() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_input_tokens: 2_000_000,
            cache_creation_input_tokens: 0,
        };
        let cost = table().cost("gpt-4o", &usage).unwrap();
        assert_eq!(cost.input, Some(2.5));
        assert_eq!(cost.output, Some(1.25));
        assert_eq!(cost.cache_read, Some(0.5));
        assert_eq!(cost.total, Some(4.25));
    }
}
