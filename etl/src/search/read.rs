//! Answers a search: traces (or observations, or sessions) whose current text matches every
//! word and phrase of the query and none of its exclusions, newest match first, by cursor, each
//! with the snippets that matched.
//!
//! How: the index is asked for the query's rarest word (its per-term counts are one read), time
//! window by time window, newest first ([`Windows`]); each window's candidates bring the
//! postings of every other word within [`SLACK_US`] of the window; what the postings say may
//! match is then checked against the rows' current text (postings outlive replaced text), and
//! the trace list's filters apply to the traces found.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::paging::{
    Span, Windows, cursor_at, encode_cursor, invalid, page_limit, parse_json_rows, read, time_bound,
};
use crate::analytics::traces::{TraceFilter, list_filters, listed_traces};
use crate::clickhouse::catalog::Table;
use crate::clickhouse::{ClickHouse, quote, quote_list};
use crate::search::index::{field_columns, posted_row_id, stored_fields};
use crate::search::query::{self, Clause, FieldText, Query};
use crate::search::text;

/// How far from a trace's first match its other words are looked for: a trace is found by what
/// happened within six hours of the match it is listed at.
pub const SLACK_US: i64 = 6 * 3_600 * 1_000_000;
/// Candidates checked at a time (their postings and current text are read together).
const CHUNK: usize = 200;
/// Candidates one request checks at most; past them the page ends early, with a cursor.
const MAX_CHECKED: usize = 20_000;
/// Postings of each atom a search counts to find the rarest; an atom with more is common.
const COUNTED_POSTINGS: u64 = 100_000;
/// Snippets per result.
const MAX_MATCHES: usize = 5;
/// Fields of one candidate checked for a wanted clause (the first that matches is enough), and
/// for an exclusion: a trace of ten thousand matching observations costs no more than this.
const MAX_CHECKED_FIELDS: usize = 10;
const MAX_EXCLUSION_FIELDS: usize = 50;
/// Characters of a text column read to check a candidate: as far as the index looks.
const MAX_CHECKED_CHARS: usize = crate::search::index::MAX_INDEXED_BYTES;
/// Bytes of current text one request reads to check candidates; past them the page ends early,
/// with a cursor (a query of common words that rarely match together, over huge texts).
const MAX_CHECKED_TEXT_BYTES: usize = 32 << 20;
/// Candidates whose current text is read and checked before the text budget is looked at again:
/// a request reads at most this many candidates' text past [`MAX_CHECKED_TEXT_BYTES`].
const TEXT_GROUP: usize = 20;
/// Rows whose current text one statement reads (two key lists inline stay well under
/// ClickHouse's 256 KiB statement limit).
const KEYS_PER_READ: usize = 200;
/// Fields of one candidate the postings read returns: those holding the anchor first.
const MAX_POSTED_FIELDS: usize = 800;
/// Characters of a snippet.
const SNIPPET_CHARS: usize = 160;

/// What a search lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Results {
    #[default]
    Traces,
    Observations,
    Sessions,
}

/// `GET /v1/search`'s parameters: the query and the trace list's filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Which project, for a signed-in user (a project key implies it).
    pub project_id: Option<Uuid>,
    /// The query: words (all must match), `"exact phrases"`, `field:` prefixes (`input:`,
    /// `output:`, `command:`, `path:`, `diff:`, `comment:`, `name:`, `tags:`, `status:`,
    /// `stdout:`, `stderr:`, `cwd:`, `metadata.key:`, `metadata:`) and `-exclusions`.
    pub q: String,
    /// `traces` (default), `observations` or `sessions`.
    #[param(inline)]
    pub results: Option<Results>,
    /// RFC 3339; matches at or after it.
    pub from: Option<String>,
    /// RFC 3339; matches before it.
    pub to: Option<String>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Comma-separated; a trace must carry every one.
    pub tags: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    /// `warning` or `error`: traces with an observation at that level or above.
    pub level: Option<String>,
    pub min_cost: Option<f64>,
    pub min_latency_ms: Option<f64>,
    pub score_name: Option<String>,
    /// Results per page: 20 by default, 100 at most.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl SearchParams {
    fn trace_filter(&self) -> TraceFilter {
        TraceFilter {
            name: self.name.clone(),
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            tags: self.tags.clone(),
            environment: self.environment.clone(),
            release: self.release.clone(),
            level: self.level.clone(),
            min_cost: self.min_cost,
            min_latency_ms: self.min_latency_ms,
            score_name: self.score_name.clone(),
            ..TraceFilter::default()
        }
    }

    /// Whether any filter needs the trace's row.
    fn filters_traces(&self) -> bool {
        [
            &self.name,
            &self.user_id,
            &self.session_id,
            &self.tags,
            &self.environment,
            &self.release,
            &self.level,
            &self.score_name,
        ]
        .iter()
        .any(|f| f.is_some())
            || self.min_cost.is_some()
            || self.min_latency_ms.is_some()
    }
}

/// A page of search results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    /// Newest match first. Each has `matched_at_us`, `matches` (the fields that matched, each
    /// with a snippet and its highlights), and by `results`: `trace` (a trace-list row),
    /// `observation` (with `trace`), or `session_id` (with the `trace` it matched in).
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// The next page's `cursor`; null on the last page. A page can hold fewer results than its
    /// limit while more follow (a query whose words are common but rarely together).
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One field of one row that matched a clause.
#[derive(Debug, Clone, Serialize)]
struct Match {
    source: &'static str,
    id: String,
    observation_id: String,
    field: String,
    snippet: String,
    /// Byte ranges of `snippet` to highlight.
    highlights: Vec<(usize, usize)>,
}

/// A trace (or observation) the index says may match: where its matches may be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Unit {
    trace_id: String,
    /// Empty when results are traces or sessions.
    observation_id: String,
}

impl Unit {
    fn key(&self) -> String {
        if self.observation_id.is_empty() {
            self.trace_id.clone()
        } else {
            format!("{}/{}", self.trace_id, self.observation_id)
        }
    }
}

/// A row's field the postings point at, with the atoms it holds.
#[derive(Debug, Clone)]
struct Posted {
    source: Table,
    id: String,
    observation_id: String,
    field: String,
    terms: HashSet<String>,
    newest: i64,
}

/// Searches `project`.
pub async fn search(
    clickhouse: &ClickHouse,
    project: Uuid,
    params: &SearchParams,
) -> Result<SearchPage, AnalyticsError> {
    let query = query::parse(&params.q).map_err(|e| invalid("q", e.0))?;
    let limit = page_limit(params.limit, 20, 100)?;
    let results = params.results.unwrap_or_default();
    let from = time_bound(params.from.as_deref(), "from")?;
    let to = time_bound(params.to.as_deref(), "to")?;
    let cursor = cursor_at(params.cursor.as_deref())?;
    // Filters are checked before any read, so a bad one is refused at once.
    let filter = params.trace_filter();
    list_filters(project, &filter)?;
    let project_sql = quote(&project.to_string());
    let by_observation = results == Results::Observations;

    let mut high_bound = to;
    if let Some((at, _)) = &cursor {
        let after = at.saturating_add(1);
        high_bound = Some(high_bound.map_or(after, |to| to.min(after)));
    }
    let Some((anchor, anchor_atom, span)) =
        rarest(clickhouse, &project_sql, &query, from, high_bound, by_observation).await?
    else {
        return Ok(SearchPage {
            data: Vec::new(),
            next_cursor: None,
        });
    };

    // Without a filter on the trace (or sessions to tell apart), the trace-list rows are read
    // once for the page instead of once per chunk of candidates.
    let rows_per_chunk = params.filters_traces() || results == Results::Sessions;
    let mut found: Vec<Found> = Vec::new();
    let mut sessions_seen: HashSet<String> = HashSet::new();
    let mut checked = 0usize;
    let mut checked_bytes = 0usize;
    let mut last_checked: Option<(i64, String)> = None;
    'windows: for (low, high) in Windows::over(span, limit + 1) {
        let candidates = anchor_candidates(
            clickhouse,
            &project_sql,
            anchor,
            &anchor_atom,
            (low, high),
            by_observation,
        )
        .await?;
        let candidates: Vec<(Unit, i64)> = candidates
            .into_iter()
            .filter(|(unit, at)| match &cursor {
                Some((cursor_at, cursor_key)) => (*at, unit.key()) < (*cursor_at, cursor_key.clone()),
                None => true,
            })
            .collect();
        for chunk in candidates.chunks(CHUNK) {
            let outcome = check(
                clickhouse,
                &project_sql,
                &query,
                (anchor, &anchor_atom),
                (low, high),
                chunk,
                MAX_CHECKED_TEXT_BYTES.saturating_sub(checked_bytes),
            )
            .await?;
            let mut matched = outcome.found;
            checked += outcome.checked;
            checked_bytes += outcome.bytes;
            if let Some((unit, at)) = outcome.checked.checked_sub(1).map(|last| &chunk[last]) {
                last_checked = Some((*at, unit.key()));
            }
            if rows_per_chunk {
                keep_filtered(clickhouse, project, params, &filter, &mut matched).await?;
            }
            for item in matched {
                if results == Results::Sessions {
                    let Some(session) = session_of(&item) else {
                        continue;
                    };
                    if !sessions_seen.insert(session.to_owned()) {
                        continue;
                    }
                }
                found.push(item);
                if found.len() > limit {
                    break 'windows;
                }
            }
            if checked >= MAX_CHECKED || checked_bytes >= MAX_CHECKED_TEXT_BYTES {
                break 'windows;
            }
        }
    }
    let next_cursor = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(unit, at, ..)| encode_cursor(*at, &unit.key()))
    } else if checked >= MAX_CHECKED || checked_bytes >= MAX_CHECKED_TEXT_BYTES {
        last_checked.map(|(at, key)| encode_cursor(at, &key))
    } else {
        None
    };
    if !rows_per_chunk {
        keep_filtered(clickhouse, project, params, &filter, &mut found).await?;
    }
    if by_observation {
        add_observations(clickhouse, &project_sql, &mut found).await?;
    }
    let found = found
        .into_iter()
        .map(|(unit, at, trace, matches)| {
            let mut result = json!({
                "matched_at_us": at,
                "matches": matches,
            });
            match results {
                Results::Traces => result["trace"] = trace.unwrap_or_else(|| json!({"id": unit.trace_id})),
                Results::Observations => {
                    // `add_observations` paired the observation with its trace.
                    let mut pair = trace.unwrap_or_default();
                    result["observation"] = pair["observation"].take();
                    result["trace"] = pair["trace"].take();
                }
                Results::Sessions => {
                    result["session_id"] = trace.as_ref().map_or(Value::Null, |t| t["session_id"].clone());
                    result["trace"] = trace.unwrap_or(Value::Null);
                }
            }
            result
        })
        .collect();
    Ok(SearchPage {
        data: found,
        next_cursor,
    })
}

/// The session of a found unit's trace, when it has one.
fn session_of(found: &Found) -> Option<&str> {
    found.2.as_ref()?["session_id"].as_str().filter(|s| !s.is_empty())
}

/// The wanted clause whose rarest atom has the fewest postings in the range, that atom and its
/// postings' span; `None` when some wanted atom has no posting at all (nothing can match).
///
/// Each atom's postings are counted up to [`COUNTED_POSTINGS`]: a phrase with a word like
/// `the` (millions of postings a month) is not held up counting it. When every atom has more,
/// the longest is taken for the rarest (longer words are rarer) and its span counted whole.
async fn rarest<'q>(
    clickhouse: &ClickHouse,
    project: &str,
    query: &'q Query,
    from: Option<i64>,
    to: Option<i64>,
    by_observation: bool,
) -> Result<Option<(&'q Clause, String, Span)>, AnalyticsError> {
    let atoms: BTreeSet<&String> = query.wanted().flat_map(|c| c.lookup()).collect();
    let mut conditions = vec![format!("project_id = {project}")];
    if let Some(from) = from {
        conditions.push(format!("timestamp_us >= {from}"));
    }
    if let Some(to) = to {
        conditions.push(format!("timestamp_us < {to}"));
    }
    if by_observation {
        conditions.push("observation_id != ''".into());
    }
    let conditions = conditions.join(" AND ");
    let capped = atoms
        .iter()
        .map(|atom| {
            format!(
                "SELECT term, timestamp_us FROM search_postings WHERE {conditions} AND term = {}
                 LIMIT {COUNTED_POSTINGS}",
                quote(atom)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!(
        "SELECT term, count() AS rows, min(timestamp_us) AS oldest, max(timestamp_us) AS newest
         FROM ({capped}) GROUP BY term FORMAT JSONEachRow"
    );
    let spans = term_spans(clickhouse, &sql).await?;
    let mut best: Option<(&Clause, String, Span)> = None;
    for clause in query.wanted() {
        for atom in clause.lookup() {
            let Some(span) = spans.get(atom) else {
                return Ok(None);
            };
            let rarer = |b: &(&Clause, String, Span)| {
                (span.rows, std::cmp::Reverse(atom.chars().count()))
                    < (b.2.rows, std::cmp::Reverse(b.1.chars().count()))
            };
            if best.as_ref().is_none_or(rarer) {
                best = Some((clause, atom.clone(), *span));
            }
        }
    }
    let Some((clause, atom, span)) = best else {
        return Ok(None);
    };
    if span.rows < COUNTED_POSTINGS {
        return Ok(Some((clause, atom, span)));
    }
    let sql = format!(
        "SELECT term, count() AS rows, min(timestamp_us) AS oldest, max(timestamp_us) AS newest
         FROM search_postings WHERE {conditions} AND term = {} GROUP BY term FORMAT JSONEachRow",
        quote(&atom)
    );
    let span = term_spans(clickhouse, &sql).await?.remove(&atom).unwrap_or(span);
    Ok(Some((clause, atom, span)))
}

/// The spans of a `term, rows, oldest, newest` read, by term.
async fn term_spans(clickhouse: &ClickHouse, sql: &str) -> Result<HashMap<String, Span>, AnalyticsError> {
    Ok(parse_json_rows(&read(clickhouse, sql).await?)?
        .into_iter()
        .filter_map(|row| {
            Some((
                row["term"].as_str()?.to_owned(),
                Span {
                    oldest: row["oldest"].as_i64()?,
                    newest: row["newest"].as_i64()?,
                    rows: row["rows"].as_u64()?,
                },
            ))
        })
        .collect())
}

/// The units with a posting of the anchor atom (in the anchor's fields) in the window, newest
/// first, each with its newest such posting's time.
async fn anchor_candidates(
    clickhouse: &ClickHouse,
    project: &str,
    anchor: &Clause,
    atom: &str,
    (low, high): (i64, i64),
    by_observation: bool,
) -> Result<Vec<(Unit, i64)>, AnalyticsError> {
    let (unit, only) = if by_observation {
        ("trace_id, observation_id", "AND observation_id != ''")
    } else {
        ("trace_id, '' AS observation_id", "")
    };
    let sql = format!(
        "SELECT {unit}, max(timestamp_us) AS at FROM search_postings
         WHERE project_id = {project} AND term = {atom} AND {fields}
           AND timestamp_us >= {low} AND timestamp_us < {high} {only}
         GROUP BY trace_id, observation_id ORDER BY at DESC, trace_id DESC, observation_id DESC
         LIMIT {MAX_CHECKED} FORMAT JSONEachRow",
        atom = quote(atom),
        fields = anchor.fields.sql(),
    );
    Ok(parse_json_rows(&read(clickhouse, &sql).await?)?
        .into_iter()
        .filter_map(|row| {
            Some((
                Unit {
                    trace_id: row["trace_id"].as_str()?.to_owned(),
                    observation_id: row["observation_id"].as_str()?.to_owned(),
                },
                row["at"].as_i64()?,
            ))
        })
        .collect())
}

type Found = (Unit, i64, Option<Value>, Vec<Match>);

/// What [`check`] made of a chunk of candidates.
struct Checked {
    /// The candidates that match, newest first.
    found: Vec<Found>,
    /// Bytes of current text read.
    bytes: usize,
    /// How many of the chunk's candidates, from its start, were checked: fewer than all when
    /// the text budget ran out.
    checked: usize,
}

/// A candidate and, per wanted and per excluded clause, the fields its postings say may match.
struct Plan<'p> {
    /// Its place in the chunk.
    index: usize,
    unit: Unit,
    at: i64,
    wanted: Vec<Vec<&'p Posted>>,
    excluded: Vec<Vec<&'p Posted>>,
}

/// The candidates of `chunk` that match, checked against their rows' current text, each with
/// its time and matches; checking stops once `budget` bytes of text were read (see
/// [`Checked::checked`]).
async fn check(
    clickhouse: &ClickHouse,
    project: &str,
    query: &Query,
    (anchor, anchor_atom): (&Clause, &str),
    (low, high): (i64, i64),
    chunk: &[(Unit, i64)],
    budget: usize,
) -> Result<Checked, AnalyticsError> {
    let by_observation = chunk.iter().any(|(u, _)| !u.observation_id.is_empty());
    let atoms: HashSet<&str> = query
        .clauses
        .iter()
        .flat_map(|c| c.lookup())
        .map(String::as_str)
        .collect();
    let traces: BTreeMap<&str, ()> = chunk.iter().map(|(u, _)| (u.trace_id.as_str(), ())).collect();
    let sql = format!(
        "SELECT trace_id, observation_id, source, id, field, groupUniqArray(term) AS terms,
                max(timestamp_us) AS newest
         FROM search_postings
         WHERE project_id = {project} AND term IN ({atoms})
           AND timestamp_us >= {from} AND timestamp_us < {to} AND trace_id IN ({traces})
         GROUP BY trace_id, observation_id, source, id, field
         ORDER BY trace_id, observation_id, has(terms, {anchor_atom}) DESC, newest DESC
         LIMIT {MAX_POSTED_FIELDS} BY trace_id, observation_id FORMAT JSONEachRow",
        anchor_atom = quote(anchor_atom),
        atoms = quote_list(atoms.iter().copied()),
        from = low.saturating_sub(SLACK_US),
        to = high.saturating_add(SLACK_US),
        traces = quote_list(traces.keys().copied()),
    );
    let mut posted: HashMap<Unit, Vec<Posted>> = HashMap::new();
    for row in parse_json_rows(&read(clickhouse, &sql).await?)? {
        let (Some(trace_id), Some(observation_id), Some(source), Some(id), Some(field)) = (
            row["trace_id"].as_str(),
            row["observation_id"].as_str(),
            row["source"].as_str().and_then(Table::from_name),
            row["id"].as_str(),
            row["field"].as_str(),
        ) else {
            continue;
        };
        let unit = Unit {
            trace_id: trace_id.to_owned(),
            observation_id: if by_observation {
                observation_id.to_owned()
            } else {
                String::new()
            },
        };
        let terms = row["terms"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        posted.entry(unit).or_default().push(Posted {
            source,
            id: posted_row_id(source, trace_id, observation_id, id).to_owned(),
            observation_id: observation_id.to_owned(),
            field: field.to_owned(),
            terms,
            newest: row["newest"].as_i64().unwrap_or_default(),
        });
    }
    // What each candidate's postings say may match: per clause, the fields to check.
    let mut plans: Vec<Plan> = Vec::new();
    for (index, (unit, _)) in chunk.iter().enumerate() {
        let Some(fields) = posted.get(unit) else {
            continue;
        };
        // Listed at its anchor's newest posting; one newer than the window was listed there.
        let at = fields
            .iter()
            .filter(|p| anchor.fields.includes(&p.field) && p.terms.contains(anchor_atom))
            .map(|p| p.newest)
            .max();
        let Some(at) = at.filter(|at| (low..high).contains(at)) else {
            continue;
        };
        let candidates = |clause: &Clause, most: usize| -> Vec<&Posted> {
            fields
                .iter()
                .filter(|p| {
                    clause.fields.includes(&p.field) && clause.lookup().iter().all(|a| p.terms.contains(a))
                })
                .take(most)
                .collect()
        };
        let wanted: Vec<Vec<&Posted>> = query
            .wanted()
            .map(|clause| candidates(clause, MAX_CHECKED_FIELDS))
            .collect();
        if wanted.iter().any(Vec::is_empty) {
            continue;
        }
        let excluded: Vec<Vec<&Posted>> = query
            .excluded()
            .map(|clause| candidates(clause, MAX_EXCLUSION_FIELDS))
            .collect();
        plans.push(Plan {
            index,
            unit: unit.clone(),
            at,
            wanted,
            excluded,
        });
    }
    // The current text of each group's fields, read by key (newest version) and checked before
    // the next group's is read, so a request stops close to its text budget.
    let mut found = Vec::new();
    let mut bytes = 0;
    let mut checked = chunk.len();
    for group in plans.chunks(TEXT_GROUP) {
        let (texts, read) = current_texts(clickhouse, project, group).await?;
        bytes += read;
        found.extend(group.iter().filter_map(|plan| plan.verify(query, &texts)));
        if bytes >= budget {
            checked = group.last().map_or(checked, |plan| plan.index + 1);
            break;
        }
    }
    found.sort_by_key(|(unit, at, ..)| std::cmp::Reverse((*at, unit.key())));
    Ok(Checked {
        found,
        bytes,
        checked,
    })
}

/// The current text of each field a group of plans checks, by (source, trace id, row id), each
/// tokenized once whatever number of clauses check it.
type Texts = HashMap<(Table, String, String), Vec<(String, FieldText)>>;

/// One source's rows a group checks, by (trace id, row id), and the columns of their fields.
#[derive(Default)]
struct RowsToRead {
    keys: BTreeSet<(String, String)>,
    columns: BTreeSet<&'static str>,
}

/// The current text of the fields `plans` check, and the bytes read.
async fn current_texts(
    clickhouse: &ClickHouse,
    project: &str,
    plans: &[Plan<'_>],
) -> Result<(Texts, usize), AnalyticsError> {
    let mut needed: BTreeMap<Table, RowsToRead> = BTreeMap::new();
    for plan in plans {
        for posted in plan.wanted.iter().chain(&plan.excluded).flatten() {
            let rows = needed.entry(posted.source).or_default();
            rows.keys.insert((plan.unit.trace_id.clone(), posted.id.clone()));
            rows.columns.extend(field_columns(posted.source, &posted.field));
        }
    }
    let mut texts = Texts::new();
    let mut bytes = 0;
    for (source, RowsToRead { keys, columns }) in &needed {
        if columns.is_empty() {
            continue;
        }
        let keys: Vec<&(String, String)> = keys.iter().collect();
        for keys in keys.chunks(KEYS_PER_READ) {
            let read = current_fields(clickhouse, project, *source, columns, keys).await?;
            for ((trace_id, id), fields) in read {
                bytes += fields.iter().map(|(_, text)| text.len()).sum::<usize>();
                let fields = fields
                    .into_iter()
                    .map(|(field, text)| (field, FieldText::new(text)))
                    .collect();
                texts.insert((*source, trace_id, id), fields);
            }
        }
    }
    Ok((texts, bytes))
}

impl Plan<'_> {
    /// The candidate with its matches, if its current text holds every wanted clause and no
    /// excluded one.
    fn verify(&self, query: &Query, texts: &Texts) -> Option<Found> {
        let text_of = |posted: &Posted| -> Option<&FieldText> {
            texts
                .get(&(posted.source, self.unit.trace_id.clone(), posted.id.clone()))?
                .iter()
                .find(|(field, _)| *field == posted.field)
                .map(|(_, text)| text)
        };
        let mut matches = Vec::new();
        for (clause, candidates) in query.wanted().zip(&self.wanted) {
            let (posted, text, ranges) = candidates.iter().find_map(|posted| {
                let text = text_of(posted)?;
                clause.matches(text).map(|ranges| (posted, text, ranges))
            })?;
            if matches.len() < MAX_MATCHES {
                let snippet = text::snippet(&text.text, &ranges, SNIPPET_CHARS);
                matches.push(Match {
                    source: posted.source.name(),
                    id: posted.id.clone(),
                    observation_id: posted.observation_id.clone(),
                    field: posted.field.clone(),
                    snippet: snippet.text,
                    highlights: snippet.highlights,
                });
            }
        }
        for (clause, candidates) in query.excluded().zip(&self.excluded) {
            if candidates
                .iter()
                .any(|posted| text_of(posted).is_some_and(|text| clause.matches(text).is_some()))
            {
                return None;
            }
        }
        Some((self.unit.clone(), self.at, None, matches))
    }
}

/// The searchable fields held by `columns` of `source`'s rows with the (trace id, id) keys
/// given, newest version.
async fn current_fields(
    clickhouse: &ClickHouse,
    project: &str,
    source: Table,
    columns: &BTreeSet<&str>,
    keys: &[&(String, String)],
) -> Result<Vec<((String, String), Vec<(String, String)>)>, AnalyticsError> {
    let ids: BTreeSet<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
    let traces: BTreeSet<&str> = keys.iter().map(|(trace, _)| trace.as_str()).collect();
    let (ids, traces) = (quote_list(ids), quote_list(traces));
    let trace_column = if source == Table::Traces { "id" } else { "trace_id" };
    // Text columns are read up to a bound; arrays (tags, metadata) whole.
    let columns: Vec<String> = columns
        .iter()
        .map(|column| {
            if matches!(*column, "tags" | "metadata_keys" | "metadata_values") {
                (*column).to_owned()
            } else {
                // By characters: a cut inside a character would not be valid JSON text.
                format!("substringUTF8({column}, 1, {MAX_CHECKED_CHARS}) AS {column}")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {trace_column} AS trace_key, id, {columns} FROM {table}
         WHERE project_id = {project} AND {trace_column} IN ({traces}) AND id IN ({ids})
         ORDER BY trace_key, id, version DESC LIMIT 1 BY trace_key, id FORMAT JSONEachRow",
        columns = columns.join(", "),
        table = source.name(),
    );
    Ok(parse_json_rows(&read(clickhouse, &sql).await?)?
        .into_iter()
        .filter_map(|row| {
            let key = (
                row["trace_key"].as_str()?.to_owned(),
                row["id"].as_str()?.to_owned(),
            );
            Some((key, stored_fields(source, &row)))
        })
        .collect())
}

/// Keeps the found units whose trace passes the filters, each with its trace-list row (a unit
/// whose trace has no row yet is kept only when no filter needs one).
async fn keep_filtered(
    clickhouse: &ClickHouse,
    project: Uuid,
    params: &SearchParams,
    filter: &TraceFilter,
    found: &mut Vec<Found>,
) -> Result<(), AnalyticsError> {
    let ids: Vec<String> = found
        .iter()
        .map(|(u, ..)| u.trace_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows: HashMap<String, Value> = listed_traces(clickhouse, project, filter, &ids)
        .await?
        .into_iter()
        .filter_map(|row| Some((row["id"].as_str()?.to_owned(), row)))
        .collect();
    let filtered = params.filters_traces();
    found.retain_mut(|(unit, _, trace, _)| {
        *trace = rows.get(&unit.trace_id).cloned();
        trace.is_some() || !filtered
    });
    Ok(())
}

/// Puts each found observation's row (its list columns) beside its trace.
async fn add_observations(
    clickhouse: &ClickHouse,
    project: &str,
    found: &mut [Found],
) -> Result<(), AnalyticsError> {
    if found.is_empty() {
        return Ok(());
    }
    let traces = quote_list(found.iter().map(|(u, ..)| u.trace_id.as_str()));
    let ids = quote_list(found.iter().map(|(u, ..)| u.observation_id.as_str()));
    let sql = format!(
        "SELECT id, trace_id, parent_observation_id, type, name, start_time_us, end_time_us, level, model,
                total_cost, input_tokens, output_tokens
         FROM observations WHERE project_id = {project} AND trace_id IN ({traces}) AND id IN ({ids})
         ORDER BY trace_id, id, version DESC LIMIT 1 BY trace_id, id FORMAT JSONEachRow"
    );
    let rows: HashMap<(String, String), Value> = parse_json_rows(&read(clickhouse, &sql).await?)?
        .into_iter()
        .filter_map(|row| {
            Some((
                (
                    row["trace_id"].as_str()?.to_owned(),
                    row["id"].as_str()?.to_owned(),
                ),
                row,
            ))
        })
        .collect();
    for (unit, _, trace, _) in found.iter_mut() {
        let observation = rows
            .get(&(unit.trace_id.clone(), unit.observation_id.clone()))
            .cloned()
            .unwrap_or_else(|| json!({"id": unit.observation_id, "trace_id": unit.trace_id}));
        let trace_row = trace.take().unwrap_or_else(|| json!({"id": unit.trace_id}));
        *trace = Some(json!({"observation": observation, "trace": trace_row}));
    }
    Ok(())
}
