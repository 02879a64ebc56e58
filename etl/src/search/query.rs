//! The search language: words (every one must match), `"exact phrases"`, `field:` prefixes
//! (`input:`, `output:`, `command:`, `path:`, `metadata.key:`, ...) and `-exclusions`. A
//! query becomes clauses; each clause names the atoms the index is asked for and how a
//! candidate's current text is checked.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::search::text::{self, Normalized};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1_000;
/// Most clauses (words, phrases, exclusions) in one query.
pub const MAX_CLAUSES: usize = 16;
/// Most atoms of one clause looked up in the index; a longer phrase's others are checked in
/// the text only.
pub const MAX_LOOKUP_ATOMS: usize = 8;

/// The `field:` prefixes, each with the stored fields it searches.
const PREFIXES: [(&str, &[&str]); 12] = [
    ("input", &["input"]),
    ("output", &["output", "stdout", "stderr"]),
    ("command", &["command"]),
    ("path", &["path", "new_path", "cwd"]),
    ("diff", &["diff"]),
    ("comment", &["comment"]),
    ("name", &["name"]),
    ("tags", &["tags"]),
    ("status", &["status"]),
    ("stdout", &["stdout"]),
    ("stderr", &["stderr"]),
    ("cwd", &["cwd"]),
];

/// Which fields a clause searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    Any,
    /// One of these stored fields.
    Named(Vec<String>),
    /// Every metadata field (`metadata:`).
    Metadata,
}

impl Fields {
    pub fn includes(&self, field: &str) -> bool {
        match self {
            Fields::Any => true,
            Fields::Named(names) => names.iter().any(|name| name == field),
            Fields::Metadata => field.starts_with("metadata."),
        }
    }

    /// The condition on `search_postings.field`, as SQL (`1` for any field).
    pub fn sql(&self) -> String {
        match self {
            Fields::Any => "1".into(),
            Fields::Named(names) => {
                let quoted: Vec<String> = names.iter().map(|n| crate::clickhouse::quote(n)).collect();
                format!("field IN ({})", quoted.join(", "))
            }
            Fields::Metadata => "startsWith(field, 'metadata.')".into(),
        }
    }
}

/// One word or phrase of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// As typed, without its prefix, sign or quotes.
    pub text: String,
    pub fields: Fields,
    /// `-word`: what a result must not contain.
    pub excluded: bool,
    /// Quoted: its words must appear together, in order.
    pub phrase: bool,
    /// The atoms every matching text has (in text order, deduplicated).
    pub atoms: Vec<String>,
    /// The normalized text a phrase, or a word of several atoms (`billing.rs`), must contain.
    pub needle: Option<String>,
}

impl Clause {
    /// The atoms the index is asked for.
    pub fn lookup(&self) -> &[String] {
        &self.atoms[..self.atoms.len().min(MAX_LOOKUP_ATOMS)]
    }

    /// Whether `field` (a field's current text) matches; the original byte ranges to highlight
    /// when it does.
    pub fn matches(&self, field: &FieldText) -> Option<Vec<(usize, usize)>> {
        if !self.atoms.iter().all(|atom| field.terms.contains(atom)) {
            return None;
        }
        match &self.needle {
            None => Some(text::term_ranges(&field.text, &self.atoms)),
            Some(needle) => {
                let normalized = field.normalized.get_or_init(|| text::normalize(&field.text));
                let (start, end) = text::contains_phrase(normalized, needle)?;
                Some(vec![text::original_range(normalized, start, end, &field.text)])
            }
        }
    }
}

/// A field's current text, tokenized once however many clauses check it (and normalized once,
/// when a phrase first needs it).
pub struct FieldText {
    pub text: String,
    terms: HashSet<String>,
    normalized: OnceLock<Normalized>,
}

impl FieldText {
    pub fn new(text: String) -> Self {
        let mut terms = HashSet::new();
        text::terms(&text, |term: &str| {
            if !terms.contains(term) {
                terms.insert(term.to_owned());
            }
        });
        FieldText {
            text,
            terms,
            normalized: OnceLock::new(),
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

impl Query {
    pub fn wanted(&self) -> impl Iterator<Item = &Clause> {
        self.clauses.iter().filter(|c| !c.excluded)
    }

    pub fn excluded(&self) -> impl Iterator<Item = &Clause> {
        self.clauses.iter().filter(|c| c.excluded)
    }
}

/// Why a query was refused: a message for the `q` parameter, saying what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn refuse(message: impl Into<String>) -> QueryError {
    QueryError(message.into())
}

/// The fields a `prefix:` names, or `None` when `prefix` is no field (the colon is part of a
/// word then, as in `std::io` or `http://`).
fn prefix_fields(prefix: &str) -> Option<Fields> {
    let lower = prefix.to_lowercase();
    if lower == "metadata" {
        return Some(Fields::Metadata);
    }
    if let Some(key) = lower.strip_prefix("metadata.")
        && !key.is_empty()
    {
        return Some(Fields::Named(vec![crate::search::index::metadata_field(key)]));
    }
    PREFIXES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, fields)| Fields::Named(fields.iter().map(|f| (*f).to_owned()).collect()))
}

/// Parses `q`. Words are separated by whitespace; a `"` opens a phrase that runs to the next
/// `"`; `-` before a word or phrase excludes it; `field:` before one restricts it.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(refuse(format!(
            "is {} bytes; a query is at most {MAX_QUERY_BYTES}",
            q.len()
        )));
    }
    let mut clauses = Vec::new();
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let mut item = rest;
        let excluded = item.starts_with('-') && item.len() > 1;
        if excluded {
            item = &item[1..];
        }
        // A field prefix: letters, digits, `_`, `.` then `:` right before the word or phrase.
        let mut fields = Fields::Any;
        if let Some(colon) = item.find(':') {
            let prefix = &item[..colon];
            let valid = !prefix.is_empty()
                && prefix
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-');
            if valid
                && let Some(named) = prefix_fields(prefix)
                && item[colon + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_whitespace())
            {
                fields = named;
                item = &item[colon + 1..];
            }
        }
        let (text, phrase, after) = if let Some(quoted) = item.strip_prefix('"') {
            let Some(close) = quoted.find('"') else {
                return Err(refuse(
                    "has a phrase with no closing `\"`: close it, or remove the opening one",
                ));
            };
            (&quoted[..close], true, &quoted[close + 1..])
        } else {
            let end = item.find(char::is_whitespace).unwrap_or(item.len());
            (&item[..end], false, &item[end..])
        };
        rest = after.trim_start();
        let atoms = dedup(text::atoms(text));
        if atoms.is_empty() {
            // Punctuation alone (`-`, `!!`) searches for nothing.
            continue;
        }
        let needle = (phrase || atoms.len() > 1).then(|| text::normalize(text.trim()).text);
        let clause = Clause {
            text: text.to_owned(),
            fields,
            excluded,
            phrase,
            atoms,
            needle,
        };
        // The same word twice asks nothing more (and would be checked twice).
        if !clauses.iter().any(|c: &Clause| {
            (&c.fields, c.excluded, &c.atoms, &c.needle)
                == (&clause.fields, clause.excluded, &clause.atoms, &clause.needle)
        }) {
            clauses.push(clause);
        }
        if clauses.len() > MAX_CLAUSES {
            return Err(refuse(format!(
                "has more than {MAX_CLAUSES} words and phrases; search with fewer"
            )));
        }
    }
    if clauses.iter().all(|c| c.excluded) {
        return Err(refuse(if clauses.is_empty() {
            "has no word to search for: give at least one word, e.g. `q=timeout`"
        } else {
            "only excludes: give at least one word to find besides the `-` ones"
        }));
    }
    Ok(Query { clauses })
}

fn dedup(atoms: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    atoms.into_iter().filter(|a| seen.insert(a.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(q: &str) -> Clause {
        let query = parse(q).unwrap();
        assert_eq!(query.clauses.len(), 1, "{q}");
        query.clauses.into_iter().next().unwrap()
    }

    #[test]
    fn words_phrases_prefixes_and_exclusions() {
        let query =
            parse(r#"timeout input:"connection refused" -flaky metadata.Branch:main path:billing.rs"#)
                .unwrap();
        let summary: Vec<(String, bool, bool, Fields)> = query
            .clauses
            .iter()
            .map(|c| (c.text.clone(), c.excluded, c.phrase, c.fields.clone()))
            .collect();
        let named = |names: &[&str]| Fields::Named(names.iter().map(|n| (*n).to_owned()).collect());
        assert_eq!(
            summary,
            [
                ("timeout".to_owned(), false, false, Fields::Any),
                ("connection refused".to_owned(), false, true, named(&["input"])),
                ("flaky".to_owned(), true, false, Fields::Any),
                ("main".to_owned(), false, false, named(&["metadata.branch"])),
                (
                    "billing.rs".to_owned(),
                    false,
                    false,
                    named(&["path", "new_path", "cwd"])
                ),
            ]
        );
        assert_eq!(query.clauses[1].atoms, ["connection", "refused"]);
        assert_eq!(query.clauses[1].needle.as_deref(), Some("connection refused"));
        assert_eq!(query.clauses[4].atoms, ["billing", "rs"]);
        assert_eq!(query.clauses[4].needle.as_deref(), Some("billing.rs"));
        assert_eq!(query.clauses[0].needle, None);
    }

    #[test]
    fn a_colon_that_names_no_field_is_part_of_the_word() {
        let c = clause("std::collections");
        assert_eq!(c.fields, Fields::Any);
        assert_eq!(c.text, "std::collections");
        assert_eq!(clause("https://example.com").fields, Fields::Any);
        let query = parse("a - b-c").unwrap();
        assert!(
            query.clauses.iter().all(|c| !c.excluded),
            "a lone or inner `-` excludes nothing"
        );
        assert_eq!(query.clauses.len(), 2);
    }

    #[test]
    fn refusals_say_what_to_change() {
        for (q, says) in [
            ("", "no word"),
            ("   !! ", "no word"),
            ("-flaky", "only excludes"),
            ("\"open phrase", "closing"),
        ] {
            let error = parse(q).unwrap_err();
            assert!(error.0.contains(says), "{q}: {error}");
        }
        let many: Vec<String> = (0..=MAX_CLAUSES).map(|i| format!("w{i}")).collect();
        assert!(parse(&many.join(" ")).unwrap_err().0.contains("fewer"));
        assert_eq!(
            parse("error error -x -x").unwrap().clauses.len(),
            2,
            "repeats are one clause"
        );
        assert!(
            parse(&"a".repeat(MAX_QUERY_BYTES + 1))
                .unwrap_err()
                .0
                .contains("at most")
        );
    }

    fn check(clause: &Clause, text: &str) -> Option<Vec<(usize, usize)>> {
        clause.matches(&FieldText::new(text.to_owned()))
    }

    #[test]
    fn clauses_check_current_text() {
        let word = clause("user");
        assert!(check(&word, "getUserName failed").is_some());
        assert!(check(&word, "username").is_none());
        let phrase = clause("\"Connection  Refused\"");
        let ranges = check(&phrase, "error: connection refused (os error 111)").unwrap();
        assert_eq!(ranges, [(7, 25)]);
        assert!(check(&phrase, "refused connection").is_none());
        let cjk = clause("数据库");
        assert!(check(&cjk, "连接数据库失败").is_some());
        assert!(check(&cjk, "数据 库").is_none());
        let dotted = clause("billing.rs");
        assert!(check(&dotted, "edit src/billing.rs:42").is_some());
        assert!(check(&dotted, "billing in rs").is_none());
    }
}
