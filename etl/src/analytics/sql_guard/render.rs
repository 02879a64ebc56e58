//! The text the guard sends, and the proof that ClickHouse reads it as the tree it checked.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, Query, Select, SetExpr, Statement, TableFactor, Value, ValueWithSpan, Visit, VisitMut,
    Visitor, VisitorMut,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use uuid::Uuid;

use super::{GuardError, lexer, name_parts, project_filter, table_in_expression};
use crate::clickhouse::catalog::Table;

/// Renders `statement` (already scoped) and returns the text only if ClickHouse's lexing, then
/// sqlparser's parse of it give back exactly `statement`, every allowlisted table read only
/// inside the project's filter.
pub(super) fn verified(statement: Statement, project_id: Uuid) -> Result<String, GuardError> {
    let mut written = statement.clone();
    if let ControlFlow::Break(error) = VisitMut::visit(&mut written, &mut Writer) {
        return Err(error);
    }
    let text = written.to_string();

    let clickhouse_literals = lexer::string_literals(&text).map_err(GuardError::Unverifiable)?;
    let mut parser_literals = Vec::new();
    let tokens = Tokenizer::new(&ClickHouseDialect {}, &text)
        .tokenize()
        .map_err(|e| GuardError::Unverifiable(e.to_string()))?;
    for token in tokens {
        match token {
            Token::SingleQuotedString(value) => parser_literals.push(value),
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return Err(GuardError::Unverifiable("a comment".into()));
            }
            _ => {}
        }
    }
    if clickhouse_literals != parser_literals {
        return Err(GuardError::Unverifiable(
            "string literals read differently".into(),
        ));
    }

    let mut reparsed = Parser::parse_sql(&ClickHouseDialect {}, &text)
        .map_err(|e| GuardError::Unverifiable(e.to_string()))?;
    if reparsed.len() != 1 || reparsed[0] != statement {
        return Err(GuardError::Unverifiable(
            "the written query reads differently".into(),
        ));
    }
    check_scoped(&reparsed.remove(0), project_id)?;
    Ok(text)
}

/// Writes string literals with only the escapes both lexers read alike (`\\`, `\'`): then
/// sqlparser's printer, which doubles a quote only when no backslash precedes it, prints them
/// verbatim. Refuses every other kind of literal and names a quote could break out of.
struct Writer;

impl VisitorMut for Writer {
    type Break = GuardError;

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<GuardError> {
        let refused = match &mut value.value {
            Value::SingleQuotedString(text) => {
                *text = text.replace('\\', "\\\\").replace('\'', "\\'");
                return ControlFlow::Continue(());
            }
            Value::Number(..) | Value::Boolean(_) | Value::Null => return ControlFlow::Continue(()),
            Value::Placeholder(_) => "placeholder",
            Value::DollarQuotedString(_) => "dollar-quoted",
            Value::HexStringLiteral(_) => "hex string",
            Value::NationalStringLiteral(_) | Value::NationalQuoteDelimitedStringLiteral(_) => {
                "national string"
            }
            Value::DoubleQuotedString(_) => "double-quoted string",
            _ => "escaped, raw, byte or triple-quoted string",
        };
        ControlFlow::Break(GuardError::Literal(refused))
    }

    fn pre_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<GuardError> {
        let unsafe_char = |c: char| matches!(c, '\\' | '\'' | '"' | '`') || c.is_control();
        if ident.quote_style.is_some() && ident.value.contains(unsafe_char) {
            return ControlFlow::Break(GuardError::Identifier(ident.value.clone()));
        }
        ControlFlow::Continue(())
    }
}

/// Every reference to an allowlisted table is the one table of a SELECT whose `PREWHERE` is
/// the caller's project; no table is named anywhere else.
fn check_scoped(statement: &Statement, project_id: Uuid) -> Result<(), GuardError> {
    let project = Parser::new(&ClickHouseDialect {})
        .try_with_sql(&project_filter(project_id))
        .and_then(|mut parser| parser.parse_expr())
        .expect("the project filter is an expression");
    let mut check = ScopeCheck {
        project,
        ctes: Vec::new(),
        tables: 0,
        scoped: 0,
    };
    if let ControlFlow::Break(error) = Visit::visit(statement, &mut check) {
        return Err(error);
    }
    if check.tables != check.scoped {
        return Err(GuardError::Unverifiable(format!(
            "{} of {} table references are outside the project's filter",
            check.tables - check.scoped.min(check.tables),
            check.tables
        )));
    }
    Ok(())
}

struct ScopeCheck {
    project: Expr,
    /// The CTE names of each query being visited, innermost last.
    ctes: Vec<HashSet<String>>,
    tables: usize,
    scoped: usize,
}

impl ScopeCheck {
    fn is_scoped(&self, select: &Select) -> bool {
        let [from] = select.from.as_slice() else {
            return false;
        };
        let TableFactor::Table { name, args: None, .. } = &from.relation else {
            return false;
        };
        let parts = name_parts(name);
        from.joins.is_empty()
            && matches!(parts.as_slice(), [table] if !self.is_cte(table) && Table::from_name(table).is_some())
            && select.prewhere.as_ref() == Some(&self.project)
    }

    fn is_cte(&self, name: &str) -> bool {
        self.ctes.iter().any(|scope| scope.contains(name))
    }
}

fn selects(body: &SetExpr) -> Vec<&Select> {
    match body {
        SetExpr::Select(select) => vec![select],
        SetExpr::SetOperation { left, right, .. } => {
            let mut all = selects(left);
            all.extend(selects(right));
            all
        }
        _ => Vec::new(),
    }
}

impl Visitor for ScopeCheck {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        self.ctes.push(
            query
                .with
                .iter()
                .flat_map(|with| &with.cte_tables)
                .map(|cte| cte.alias.name.value.clone())
                .collect(),
        );
        self.scoped += selects(&query.body)
            .into_iter()
            .filter(|select| self.is_scoped(select))
            .count();
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<GuardError> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<GuardError> {
        match factor {
            TableFactor::Table { name, args: None, .. } => {
                let parts = name_parts(name);
                match parts.as_slice() {
                    [cte] if self.is_cte(cte) => ControlFlow::Continue(()),
                    [table] if Table::from_name(table).is_some() => {
                        self.tables += 1;
                        ControlFlow::Continue(())
                    }
                    _ => ControlFlow::Break(GuardError::TableNotAllowed(name.to_string())),
                }
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            other => ControlFlow::Break(GuardError::TableFunction(other.to_string())),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<GuardError> {
        match table_in_expression(expr) {
            Some(error) => ControlFlow::Break(error),
            None => ControlFlow::Continue(()),
        }
    }
}
