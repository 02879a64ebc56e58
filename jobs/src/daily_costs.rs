//! Verifies `daily_costs` (filled by a materialized view at insert time) against the
//! deduplicated raw observations for yesterday and today.
//!
//! The view sees every inserted block, so a replayed generation is counted twice there while
//! `observations FINAL` counts it once: this job is how such drift becomes visible.

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseError};

/// One (project, day, model) where the view and the raw rows disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostDifference {
    pub project_id: String,
    pub day: String,
    pub model: String,
    /// (generations, total cost) as the view has them.
    pub view: (u64, String),
    /// (generations, total cost) from `observations FINAL`.
    pub raw: (u64, String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CostCheck {
    pub groups: u64,
    pub differences: Vec<CostDifference>,
}

type Group = ((String, String, String), (u64, String));

fn parse_groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let key = (f.next()?.to_owned(), f.next()?.to_owned(), f.next()?.to_owned());
            Some((key, (f.next()?.parse().ok()?, f.next()?.to_owned())))
        })
        .collect()
}

/// Compares the view with the raw rows for the UTC day of `now_us` and the day before.
pub async fn verify(clickhouse: &ClickHouse, now_us: i64) -> Result<CostCheck, ClickHouseError> {
    let since_day = now_us.div_euclid(86_400 * 1_000_000) - 1;
    let since_us = since_day * 86_400 * 1_000_000;
    let view = clickhouse
        .query_text(&format!(
            "SELECT project_id, toString(day) AS d, model, sum(generations), toString(sum(total_cost)) \
             FROM daily_costs WHERE day >= toDate({since_day}) GROUP BY project_id, d, model \
             ORDER BY project_id, d, model FORMAT TabSeparated"
        ))
        .await?;
    let raw = clickhouse
        .query_text(&format!(
            "SELECT project_id, toString(toDate(toDateTime(intDiv(start_time_us, 1000000)))) AS d, \
             ifNull(model, '') AS m, count(), toString(sum(ifNull(total_cost, toDecimal64(0, 12)))) \
             FROM observations FINAL WHERE type = 'generation' AND start_time_us >= {since_us} \
             GROUP BY project_id, d, m ORDER BY project_id, d, m FORMAT TabSeparated"
        ))
        .await?;
    let (view, raw) = (parse_groups(&view), parse_groups(&raw));
    let mut check = CostCheck::default();
    let keys: std::collections::BTreeSet<_> = view.iter().chain(&raw).map(|(key, _)| key.clone()).collect();
    for key in keys {
        check.groups += 1;
        let find = |groups: &[Group]| {
            groups
                .iter()
                .find(|(k, _)| *k == key)
                .map_or((0, "0".to_owned()), |(_, v)| v.clone())
        };
        let (in_view, in_raw) = (find(&view), find(&raw));
        let same_cost = in_view.1.parse::<f64>().ok() == in_raw.1.parse::<f64>().ok();
        if in_view.0 != in_raw.0 || !same_cost {
            let (project_id, day, model) = key;
            check.differences.push(CostDifference {
                project_id,
                day,
                model,
                view: in_view,
                raw: in_raw,
            });
        }
    }
    Ok(check)
}
