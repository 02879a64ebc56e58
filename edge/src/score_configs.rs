//! Scores sent with a `configId` are checked against their config before the edge answers, so
//! a score that does not fit gets its 400 in the answer (Langfuse itself only drops it later).
//! The configs come from the ETL (`POST /v1/score-configs/lookup`, signed, looked up in the
//! project of the caller's key) and are cached per isolate. The ETL checks every score again as
//! it loads, so a config changed within the cache's lifetime is still enforced there.
//!
//! The intake is pure and synchronous, so the Worker reads a request in up to two passes: the
//! first checks what the cache knows and collects the config ids it does not; when there are
//! some, the Worker asks the ETL once and reads the request again. A config the ETL cannot be
//! asked about (it is down) is not checked here: the score is accepted and checked at load.

use std::collections::HashMap;

use agenttrace_schemas::score_config::{GivenValue, ScoreConfig};

/// What the isolate knows of a config: `Some(None)` means the project has no such config.
pub type Known = Option<Option<ScoreConfig>>;

/// The check a request's scores go through: known configs from `lookup`, the rest collected.
pub struct ConfigCheck<'a> {
    lookup: &'a dyn Fn(&str) -> Known,
    unresolved: Vec<String>,
}

impl<'a> ConfigCheck<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Known) -> Self {
        ConfigCheck {
            lookup,
            unresolved: Vec::new(),
        }
    }

    /// A check that knows no config (every score with a `configId` is left to the ETL).
    pub fn unknown() -> ConfigCheck<'static> {
        fn nothing(_: &str) -> Known {
            None
        }
        ConfigCheck::new(&nothing)
    }

    /// Whether a score of `name`, declared `data_type`, with `value`, fits config `config_id`;
    /// `Err` is the answer's message, naming the field. A config not known yet passes.
    pub fn check(
        &mut self,
        config_id: &str,
        name: &str,
        data_type: Option<&str>,
        value: GivenValue,
    ) -> Result<(), String> {
        match (self.lookup)(config_id) {
            None => {
                if !self.unresolved.iter().any(|id| id == config_id) {
                    self.unresolved.push(config_id.to_owned());
                }
                Ok(())
            }
            Some(None) => Err(format!(
                "body.configId: no score config {config_id} in this project; create it first (POST /api/public/score-configs)"
            )),
            Some(Some(config)) => config
                .check(name, data_type, value)
                .map_err(|misfit| format!("body.{misfit}")),
        }
    }

    /// The config ids the lookup did not know, in the order first seen.
    pub fn unresolved(&self) -> &[String] {
        &self.unresolved
    }
}

/// The isolate's score configs, per project and id, each kept for `ttl_ms`.
pub struct ConfigCache {
    entries: HashMap<(String, String), (Option<ScoreConfig>, u64)>,
    ttl_ms: u64,
    max_entries: usize,
}

impl ConfigCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        ConfigCache {
            entries: HashMap::new(),
            ttl_ms,
            max_entries,
        }
    }

    pub fn get(&self, project_id: &str, config_id: &str, now_ms: u64) -> Known {
        let (config, expires) = self.entries.get(&(project_id.to_owned(), config_id.to_owned()))?;
        (*expires > now_ms).then(|| config.clone())
    }

    /// Records what the ETL said of `asked` in `project_id`: each asked id is either among
    /// `found` or missing from the project.
    pub fn put(&mut self, project_id: &str, asked: &[String], found: Vec<ScoreConfig>, now_ms: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        if self.entries.len() + asked.len() > self.max_entries {
            self.entries.retain(|_, (_, expires)| *expires > now_ms);
            if self.entries.len() + asked.len() > self.max_entries {
                self.entries.clear();
            }
        }
        let expires = now_ms + self.ttl_ms;
        let mut found: HashMap<String, ScoreConfig> = found
            .into_iter()
            .map(|config| (config.id.clone(), config))
            .collect();
        for id in asked {
            self.entries
                .insert((project_id.to_owned(), id.clone()), (found.remove(id), expires));
        }
    }
}

#[cfg(test)]
mod tests {
    use agenttrace_schemas::score_config::ConfigDataType;

    use super::*;

    fn helpfulness() -> ScoreConfig {
        ScoreConfig {
            id: "c1".into(),
            name: "helpfulness".into(),
            data_type: ConfigDataType::Numeric,
            min_value: Some(0.0),
            max_value: Some(5.0),
            categories: None,
            is_archived: false,
        }
    }

    #[test]
    fn unknown_configs_pass_and_are_collected_once() {
        let mut check = ConfigCheck::unknown();
        assert!(
            check
                .check("c1", "helpfulness", None, GivenValue::Number(9.0))
                .is_ok()
        );
        assert!(
            check
                .check("c1", "helpfulness", None, GivenValue::Number(9.0))
                .is_ok()
        );
        assert!(check.check("c2", "x", None, GivenValue::Number(1.0)).is_ok());
        assert_eq!(check.unresolved(), ["c1", "c2"]);
    }

    #[test]
    fn known_configs_are_enforced_and_missing_ones_refused() {
        let lookup = |id: &str| match id {
            "c1" => Some(Some(helpfulness())),
            _ => Some(None),
        };
        let mut check = ConfigCheck::new(&lookup);
        assert!(
            check
                .check("c1", "helpfulness", Some("numeric"), GivenValue::Number(4.0))
                .is_ok()
        );
        let above = check
            .check("c1", "helpfulness", None, GivenValue::Number(7.0))
            .unwrap_err();
        assert!(
            above.starts_with("body.value: 7 is above the maxValue 5"),
            "{above}"
        );
        let missing = check.check("c9", "x", None, GivenValue::Number(1.0)).unwrap_err();
        assert!(
            missing.starts_with("body.configId: no score config c9"),
            "{missing}"
        );
        assert!(check.unresolved().is_empty());
    }

    #[test]
    fn the_cache_keeps_what_was_found_and_what_was_not_per_project() {
        let mut cache = ConfigCache::new(1_000, 10);
        cache.put("p1", &["c1".into(), "c2".into()], vec![helpfulness()], 0);
        assert_eq!(cache.get("p1", "c1", 10), Some(Some(helpfulness())));
        assert_eq!(cache.get("p1", "c2", 10), Some(None));
        assert_eq!(cache.get("p2", "c1", 10), None, "another project's entry");
        assert_eq!(cache.get("p1", "c1", 1_000), None, "expired");
        let mut off = ConfigCache::new(0, 10);
        off.put("p1", &["c1".into()], vec![helpfulness()], 0);
        assert_eq!(off.get("p1", "c1", 0), None);
    }

    #[test]
    fn a_full_cache_drops_what_expired_then_everything() {
        let mut cache = ConfigCache::new(100, 2);
        cache.put("p1", &["a".into(), "b".into()], Vec::new(), 0);
        cache.put("p1", &["c".into()], Vec::new(), 200);
        assert_eq!(cache.get("p1", "c", 201), Some(None));
        assert_eq!(cache.get("p1", "a", 201), None);
    }
}
