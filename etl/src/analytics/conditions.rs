//! One way to write the conditions of the SQL the read routes build: [`Conditions`] collects
//! them one by one, quotes every string value with [`quote`] (the one quoting of every statement the
//! server writes), and renders them joined by `AND`.

use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::paging::invalid;
use crate::clickhouse::{quote, quote_list};

/// A number written into SQL as it is. Only numbers implement it, so no text reaches the SQL
/// unquoted.
pub trait Number: Copy {
    fn sql(self) -> String;
}

impl Number for i64 {
    fn sql(self) -> String {
        self.to_string()
    }
}

impl Number for f64 {
    /// The shortest form that reads back exactly (`1e300`, not 301 digits). Callers refuse
    /// values that are not finite, naming the parameter.
    fn sql(self) -> String {
        format!("{self:?}")
    }
}

/// `level=` on the read routes: rows at that level or above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

impl Level {
    pub fn parse(value: Option<&str>) -> Result<Option<Level>, AnalyticsError> {
        match value {
            None => Ok(None),
            Some("warning") => Ok(Some(Level::Warning)),
            Some("error") => Ok(Some(Level::Error)),
            Some(other) => Err(invalid("level", format!("{other:?}: use warning or error"))),
        }
    }

    /// The stored levels at or above this one.
    fn and_above(self) -> &'static [&'static str] {
        match self {
            Level::Warning => &["warning", "error"],
            Level::Error => &["error"],
        }
    }

    /// Its rank as a trace summary's `worst_level` counts levels (1 default, 2 warning, 3 error).
    pub fn rank(self) -> i64 {
        match self {
            Level::Warning => 2,
            Level::Error => 3,
        }
    }
}

/// Conditions that all must hold. Columns and SQL fragments are the server's own (constants
/// and catalog names); values arrive as strings or numbers and are written by this type.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    parts: Vec<String>,
}

impl Conditions {
    pub fn new() -> Self {
        Conditions::default()
    }

    /// The rows of `project`: where every read starts.
    pub fn project(project: Uuid) -> Self {
        let mut conditions = Conditions::new();
        conditions.eq("project_id", &project.to_string());
        conditions
    }

    pub fn eq(&mut self, column: &str, value: &str) -> &mut Self {
        self.raw(format!("{column} = {}", quote(value)))
    }

    /// `column = value` when there is a value; nothing otherwise.
    pub fn eq_opt(&mut self, column: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.eq(column, value),
            None => self,
        }
    }

    /// `column IN (...)`; an empty list matches nothing (ClickHouse refuses `IN ()`).
    pub fn in_list<S: AsRef<str>>(&mut self, column: &str, values: impl IntoIterator<Item = S>) -> &mut Self {
        match list(values) {
            Some(list) => self.raw(format!("{column} IN ({list})")),
            None => self.raw("0"),
        }
    }

    /// `column NOT IN (...)`; an empty list excludes nothing.
    pub fn not_in_list<S: AsRef<str>>(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        match list(values) {
            Some(list) => self.raw(format!("{column} NOT IN ({list})")),
            None => self,
        }
    }

    /// The array `column` holds every one of `values`.
    pub fn has_all<S: AsRef<str>>(&mut self, column: &str, values: impl IntoIterator<Item = S>) -> &mut Self {
        let list = list(values).unwrap_or_default();
        self.raw(format!("hasAll({column}, [{list}])"))
    }

    /// `column` is one of the rows `select` gives (a subquery built from [`Conditions`]).
    pub fn in_select(&mut self, column: &str, select: &str) -> &mut Self {
        self.raw(format!("{column} IN ({select})"))
    }

    /// `from <= column < to`, each bound when given.
    pub fn time_range(&mut self, column: &str, from: Option<i64>, to: Option<i64>) -> &mut Self {
        if let Some(from) = from {
            self.at_least(column, from);
        }
        if let Some(to) = to {
            self.raw(format!("{column} < {to}"));
        }
        self
    }

    pub fn at_least(&mut self, column: &str, value: impl Number) -> &mut Self {
        self.raw(format!("{column} >= {}", value.sql()))
    }

    pub fn at_most(&mut self, column: &str, value: impl Number) -> &mut Self {
        self.raw(format!("{column} <= {}", value.sql()))
    }

    /// The rows after `cursor` (the `(time, id)` of the last row shown) on a newest-first page.
    pub fn before(&mut self, time: &str, id: &str, cursor: Option<&(i64, String)>) -> &mut Self {
        self.cursor(time, id, '<', cursor)
    }

    /// The rows after `cursor` on an oldest-first page.
    pub fn after(&mut self, time: &str, id: &str, cursor: Option<&(i64, String)>) -> &mut Self {
        self.cursor(time, id, '>', cursor)
    }

    fn cursor(&mut self, time: &str, id: &str, op: char, cursor: Option<&(i64, String)>) -> &mut Self {
        match cursor {
            Some((at, last)) => self.raw(format!(
                "({time} {op} {at} OR ({time} = {at} AND {id} {op} {}))",
                quote(last)
            )),
            None => self,
        }
    }

    /// `column` (a stored level) at `level` or above, when one is asked for.
    pub fn level_at_least(&mut self, column: &str, level: Option<Level>) -> &mut Self {
        match level {
            Some(level) => self.in_list(column, level.and_above()),
            None => self,
        }
    }

    /// A condition the server wrote itself, with no caller's value in it.
    pub fn raw(&mut self, sql: impl Into<String>) -> &mut Self {
        self.parts.push(sql.into());
        self
    }

    /// Every condition of `other` too.
    pub fn and(&mut self, other: &Conditions) -> &mut Self {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The conditions joined by `AND`; `1` when there are none.
    pub fn sql(&self) -> String {
        if self.parts.is_empty() {
            "1".to_owned()
        } else {
            self.parts.join(" AND ")
        }
    }

    /// `WHERE` and the conditions; nothing when there are none.
    pub fn render(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql())
        }
    }
}

/// The quoted values, comma-separated; `None` when there are none.
fn list<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Option<String> {
    let quoted = quote_list(values);
    (!quoted.is_empty()).then_some(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every escape ClickHouse decodes, and what must pass through untouched.
    #[test]
    fn literals_escape_what_ends_or_breaks_a_string() {
        for (value, quoted) in [
            ("plain", r"'plain'"),
            ("", r"''"),
            ("it's", r"'it\'s'"),
            ("''", r"'\'\''"),
            (r"back\slash", r"'back\\slash'"),
            (r"ends in \", r"'ends in \\'"),
            // A backslash before a quote must not un-escape it.
            (r"\'", r"'\\\''"),
            ("x' OR 1 = 1 --", r"'x\' OR 1 = 1 --'"),
            ("nul\0byte", r"'nul\0byte'"),
            // NUL then a digit: ClickHouse reads `\0` alone, not an octal number.
            ("\u{0}7", r"'\07'"),
            ("line\nbreak\r\n", r"'line\nbreak\r\n'"),
            ("tab\there", r"'tab\there'"),
            ("\u{8}\u{c}", r"'\b\f'"),
            ("\u{1}F\u{1b}\u{7f}", r"'\x01F\x1B\x7F'"),
            ("é 日本語 🎉 Ünïcödé", "'é 日本語 🎉 Ünïcödé'"),
            // Multi-byte controls and separators are UTF-8 text to ClickHouse's lexer.
            ("\u{85}\u{2028}", "'\u{85}\u{2028}'"),
            ("`backtick` \"double\" %_", "'`backtick` \"double\" %_'"),
        ] {
            assert_eq!(quote(value), quoted, "{value:?}");
        }
    }

    #[test]
    fn conditions_render_joined_and_skip_what_is_absent() {
        assert_eq!(Conditions::new().render(), "");
        assert_eq!(Conditions::new().sql(), "1");
        let project = Uuid::nil();
        let mut c = Conditions::project(project);
        c.eq_opt("name", Some("a'b"))
            .eq_opt("model", None)
            .time_range("t", Some(1), Some(5))
            .time_range("u", None, Some(9))
            .before("t", "id", Some(&(3, "x".to_owned())))
            .after("t", "id", None)
            .level_at_least("level", Some(Level::Warning))
            .level_at_least("level", None)
            .at_least("cost", 0.5)
            .at_most("value", 1e300);
        assert_eq!(
            c.render(),
            "WHERE project_id = '00000000-0000-0000-0000-000000000000' AND name = 'a\\'b' \
             AND t >= 1 AND t < 5 AND u < 9 AND (t < 3 OR (t = 3 AND id < 'x')) \
             AND level IN ('warning', 'error') AND cost >= 0.5 AND value <= 1e300"
        );
    }

    #[test]
    fn lists_quote_each_value_and_empty_ones_stay_valid_sql() {
        let mut c = Conditions::new();
        c.in_list("id", ["a", "b'c"])
            .not_in_list("type", ["span"])
            .has_all("tags", ["x"])
            .after("t", "id", Some(&(7, "z".to_owned())));
        assert_eq!(
            c.sql(),
            "id IN ('a', 'b\\'c') AND type NOT IN ('span') AND hasAll(tags, ['x']) \
             AND (t > 7 OR (t = 7 AND id > 'z'))"
        );
        let none: [&str; 0] = [];
        let mut empty = Conditions::new();
        empty
            .in_list("id", none)
            .not_in_list("id", none)
            .has_all("tags", none);
        assert_eq!(empty.sql(), "0 AND hasAll(tags, [])");
    }

    #[test]
    fn levels_are_warning_or_error() {
        assert_eq!(Level::parse(None).unwrap(), None);
        assert_eq!(Level::parse(Some("error")).unwrap(), Some(Level::Error));
        assert!(matches!(
            Level::parse(Some("fatal")),
            Err(AnalyticsError::InvalidParameter { field: "level", .. })
        ));
        let mut c = Conditions::new();
        c.level_at_least("level", Some(Level::Error));
        assert_eq!(c.sql(), "level IN ('error')");
    }
}
