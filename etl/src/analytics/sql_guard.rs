//! Read-only SQL from analysts, confined to their project.
//!
//! The SQL is parsed with `sqlparser` (ClickHouse dialect) and accepted only if it is one
//! `SELECT` (with CTEs, joins, subqueries and set operations) over allowlisted tables. Every
//! reference to an allowlisted table, wherever it appears, is replaced by a derived table that
//! holds only the caller's rows, deduplicated as `FINAL` would:
//!
//! ```sql
//! (SELECT project_id, id, …, timestamp FROM traces PREWHERE project_id = '<caller>' ORDER BY version DESC LIMIT 1 BY id) AS traces
//! ```
//!
//! Because the filter sits inside the derived table, nothing the analyst writes around it
//! (`OR 1=1`, another project's id, unions, outer joins) can widen it. It is a `PREWHERE`:
//! ClickHouse drops other projects' rows from a block before it evaluates anything else, so no
//! expression of the analyst's ever runs on them (a `WHERE` evaluates every condition over the
//! whole block first, and a copy that can throw, `throwIf(name = 'x')`, would tell the analyst
//! what another project's rows hold).
//!
//! Deduplicating a whole project before the analyst's filter would sort every row the project
//! has, so a query over one table narrows the derived table with copies of its `WHERE`
//! conditions (those that read only the table's own columns, with no subquery): a condition on
//! columns every version of a row shares (the sorting key, a trace's or observation's start)
//! applies before deduplication; any other keeps only the ids of which some version matches
//! (`id IN (SELECT id … WHERE condition)`), so the newest version is still the one judged by
//! the analyst's own `WHERE`, which stays as written. The copies only ever narrow, and only
//! the caller's rows: they are the derived table's `WHERE`, after its `PREWHERE` on the
//! project. A CTE may use only the CTEs defined before it (a name inside its own body is the
//! table of that name on servers that have CTEs). Costs read as `Float64` and nothing may make
//! a decimal (ClickHouse 18.16 crashes aggregating 128-bit ones: [`readable_columns`]).
//! Everything that could
//! write, reach another database, read files or the network, or change settings is refused
//! with a reason, and so is a table named inside an expression (`x IN traces`).
//!
//! The rewritten SQL is built as a syntax tree (user text is never spliced into SQL) and the
//! guard sends only text it has verified, because sqlparser and ClickHouse do not lex every
//! string alike (`'x\\'` is `x\` to both, but sqlparser prints it back as `'x\'`, which
//! ClickHouse reads as an open string). So: string literals are written with the two escapes
//! both read the same way (`\\` and `\'`), quoted identifiers may hold no quote or backslash,
//! and the rendered text must (1) lex, by [`lexer`]'s ClickHouse rules, into the same string
//! literals sqlparser's tokenizer finds, with no comment, (2) parse back to the very tree that
//! was checked, and (3) read every table of the allowlist only inside its project filter.

use std::collections::HashSet;
use std::ops::ControlFlow;

use arrow_schema::DataType;
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, InTarget, ObjectNamePart,
    Query, Select, SelectItem, SetExpr, Statement, TableAlias, TableFactor, TypedString, Value,
    ValueWithSpan, VisitMut, VisitorMut, visit_expressions, visit_expressions_mut,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use uuid::Uuid;

use crate::clickhouse::catalog::Table;

mod lexer;
mod render;

/// Function names (lowercase) that read outside the caller's rows, touch files or the network,
/// reveal server configuration, or only burn time. Table functions are refused separately.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "dictget",
    "dicthas",
    "dictisin",
    "dictgethierarchy",
    "dictgetchildren",
    "dictgetdescendants",
    "joinget",
    "hascolumnintable",
    "file",
    "url",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "s3",
    "s3cluster",
    "hdfs",
    "mysql",
    "postgresql",
    "jdbc",
    "odbc",
    "input",
    "executable",
    "sqlite",
    "mongodb",
    "redis",
    "azureblobstorage",
    "gcs",
    "deltalake",
    "iceberg",
    "hudi",
    "getsetting",
    "getmacro",
    "getserverport",
    "hostname",
    "fqdn",
    "currentdatabase",
    "currentuser",
    "sleep",
    "sleepeachrow",
    "filesystemavailable",
    "filesystemcapacity",
    "filesystemfree",
    "catboostevaluate",
    "modelevaluate",
    "evalmlmethod",
];

/// Functions (lowercase name prefixes) on which ClickHouse 18.16 crashes — a segfault that takes
/// every tenant's reads and inserts down — for some arguments the guard cannot tell apart from
/// safe ones, with what to write instead. Found by `scripts/function-sweep.py` (2026-12-05).
const CRASHING_FUNCTIONS: &[(&str, &str)] = &[(
    "replicate",
    "ClickHouse 18.16 crashes on an array it builds from a constant (`toString(replicate('x', tags))`); \
         use arrayMap(t -> 'x', tags)",
)];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("could not parse the SQL: {0}")]
    Parse(String),
    #[error("send exactly one statement (got {0})")]
    StatementCount(usize),
    #[error("only SELECT queries are allowed")]
    NotSelect,
    #[error("table {0:?} is not queryable; use one of {tables}", tables = queryable_names())]
    TableNotAllowed(String),
    #[error("qualified table names ({0}) are not allowed: tables are read from your project only")]
    QualifiedTable(String),
    #[error("table functions ({0}) are not allowed")]
    TableFunction(String),
    #[error("function {0}() is not allowed")]
    ForbiddenFunction(String),
    #[error("function {name}() is refused: {advice}")]
    CrashingFunction { name: String, advice: &'static str },
    #[error(
        "{0} is refused: it makes a decimal, and ClickHouse 18.16 crashes aggregating 128-bit decimals; \
         costs read as Float64 here, so compute in Float64 (round(x, 6) to show fewer digits)"
    )]
    Decimal(String),
    #[error("{0} is not allowed")]
    ForbiddenClause(&'static str),
    #[error("the CTE name {0:?} hides a table of the same name; rename it")]
    CteShadowsTable(String),
    #[error(
        "{0:?} is used inside a CTE defined before it (or inside itself); a CTE may use only the CTEs before it"
    )]
    CteOrder(String),
    #[error("PREWHERE is not allowed; write WHERE (the guard keeps PREWHERE for the project filter)")]
    Prewhere,
    #[error("a table named inside an expression ({0}) is not allowed; write IN (SELECT ... FROM table)")]
    TableInExpression(String),
    #[error("{0} literals are not allowed; write strings in single quotes")]
    Literal(&'static str),
    #[error(
        "the identifier {0:?} is not allowed: quoted names may not hold quotes, backslashes or control characters"
    )]
    Identifier(String),
    #[error(
        "the query could not be written in a form ClickHouse is sure to read as checked ({0}); simplify it"
    )]
    Unverifiable(String),
}

fn queryable_names() -> String {
    Table::ALL.map(Table::name).join(", ")
}

fn name_parts(name: &sqlparser::ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

struct Guard {
    project_id: Uuid,
    /// The CTE names of each query being visited, innermost last: a name is a CTE only inside
    /// the query that defines it.
    cte_scopes: Vec<HashSet<String>>,
    /// One entry per query being visited, innermost last: the conditions its single table may
    /// be narrowed by, until that table is scoped.
    narrowing: Vec<Option<Narrowing>>,
}

/// Copies of a query's `WHERE` conditions for the derived table of its one table.
#[derive(Debug, Clone)]
struct Narrowing {
    table: Table,
    /// The name the query refers to the table by (its alias, else its name).
    name: String,
    /// Conditions on columns every version of a row shares: applied before deduplication.
    stable: Vec<Expr>,
    /// Other conditions: keep the ids of which some version matches.
    other: Vec<Expr>,
}

impl Guard {
    fn is_cte(&self, name: &str) -> bool {
        self.cte_scopes.iter().any(|scope| scope.contains(name))
    }

    /// The caller's rows of `table`, newest version of each, narrowed by copies of conditions.
    /// Built from text of our own (names from the catalog, a UUID), then the copies added as
    /// syntax: nothing the caller wrote is spliced into SQL text.
    fn project_rows(&self, table: Table, narrowing: Option<&Narrowing>) -> Box<Query> {
        let dedup = table.dedup();
        let newest_first = match dedup.version {
            Some(version) => format!(" ORDER BY {version} DESC"),
            // Copies of a row without a version are identical: any one will do.
            None => String::new(),
        };
        let project = project_filter(self.project_id);
        let columns = readable_columns(table);
        let mut query = trusted_query(&format!(
            "SELECT {columns} FROM {} PREWHERE {project}{newest_first} LIMIT 1 BY {}",
            table.name(),
            dedup.key
        ));
        if let Some(narrowing) = narrowing {
            let SetExpr::Select(select) = query.body.as_mut() else {
                unreachable!("the scoped subquery is a SELECT")
            };
            // The copies are the WHERE, evaluated only on the rows the PREWHERE kept.
            let mut filter: Option<Expr> = None;
            let mut narrow = |condition: Expr| {
                filter = Some(match filter.take() {
                    Some(left) => and(left, condition),
                    None => condition,
                });
            };
            for condition in &narrowing.stable {
                narrow(Expr::Nested(Box::new(condition.clone())));
            }
            if !narrowing.other.is_empty() {
                // Over the same columns as the analyst sees (costs as Float64), so a copied
                // condition means what it means in the analyst's WHERE.
                let mut ids = trusted_query(&format!(
                    "SELECT {} FROM (SELECT {columns} FROM {} PREWHERE {project})",
                    dedup.key,
                    table.name()
                ));
                let SetExpr::Select(ids_select) = ids.body.as_mut() else {
                    unreachable!("the ids subquery is a SELECT")
                };
                let mut ids_filter: Option<Expr> = None;
                for condition in &narrowing.other {
                    let condition = Expr::Nested(Box::new(condition.clone()));
                    ids_filter = Some(match ids_filter.take() {
                        Some(left) => and(left, condition),
                        None => condition,
                    });
                }
                ids_select.selection = ids_filter;
                let key = Parser::new(&ClickHouseDialect {})
                    .try_with_sql(&format!("({})", dedup.key))
                    .and_then(|mut parser| parser.parse_expr())
                    .expect("the dedup key is an expression");
                narrow(Expr::In {
                    expr: Box::new(key),
                    target: InTarget::Subquery(ids),
                    negated: false,
                    global: false,
                });
            }
            select.selection = filter;
        }
        query
    }

    /// What the derived table of `select`'s table may be narrowed by, when it reads one
    /// allowlisted table (no join) and has a `WHERE`.
    fn narrowing(&self, select: &Select) -> Option<Narrowing> {
        let [from] = select.from.as_slice() else {
            return None;
        };
        if !from.joins.is_empty() {
            return None;
        }
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &from.relation
        else {
            return None;
        };
        let parts = name_parts(name);
        let [table_name] = parts.as_slice() else {
            return None;
        };
        if self.is_cte(table_name) {
            return None;
        }
        let table = Table::from_name(table_name)?;
        let name = alias
            .as_ref()
            .map_or(table_name.clone(), |a| a.name.value.clone());
        // A name the SELECT list defines as an alias means the alias in ClickHouse's WHERE.
        let aliases: HashSet<String> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                _ => None,
            })
            .collect();
        let columns: HashSet<String> = table.columns().difference(&aliases).cloned().collect();
        let stable = table.stable_columns();
        let mut narrowing = Narrowing {
            table,
            name: name.clone(),
            stable: Vec::new(),
            other: Vec::new(),
        };
        for condition in conjuncts(select.selection.as_ref()?) {
            let Some(read) = columns_read(condition, &name, &columns) else {
                continue;
            };
            let mut copy = condition.clone();
            unqualify(&mut copy);
            if table.dedup().version.is_none() || read.iter().all(|c| stable.contains(&c.as_str())) {
                narrowing.stable.push(copy);
            } else {
                narrowing.other.push(copy);
            }
        }
        Some(narrowing)
    }
}

/// The conditions of an `AND` chain (through parentheses).
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => match inner.as_ref() {
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => conjuncts(inner),
            _ => vec![expr],
        },
        _ => vec![expr],
    }
}

/// The columns `condition` reads, when it reads only `columns` of the table called `table`
/// (bare or qualified by that name) and holds no subquery; `None` otherwise.
fn columns_read(condition: &Expr, table: &str, columns: &HashSet<String>) -> Option<Vec<String>> {
    struct SubqueryFinder;
    impl sqlparser::ast::Visitor for SubqueryFinder {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    if sqlparser::ast::Visit::visit(condition, &mut SubqueryFinder).is_break() {
        return None;
    }
    let mut read = Vec::new();
    let flow = visit_expressions(condition, |expr| {
        let column = match expr {
            Expr::Identifier(ident) => Some(&ident.value),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] if qualifier.value == table => Some(&column.value),
                _ => return ControlFlow::Break(()),
            },
            Expr::Lambda(_) => return ControlFlow::Break(()),
            _ => None,
        };
        match column {
            Some(column) if columns.contains(column) => {
                read.push(column.clone());
                ControlFlow::Continue(())
            }
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Continue(()) => Some(read),
        ControlFlow::Break(()) => None,
    }
}

/// `t.column` → `column`: the copy is placed where the table has no alias.
fn unqualify(expr: &mut Expr) {
    let _ = visit_expressions_mut(expr, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let Some(column) = parts.last().cloned()
        {
            *expr = Expr::Identifier(Ident { ..column });
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Every table name `query` reads, however deep.
fn table_names(query: &Query) -> Vec<String> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_relations(query, |name| {
        names.push(name_parts(name).join("."));
        ControlFlow::<()>::Continue(())
    });
    names
}

/// Refuses `SELECT ... INTO`, `PREWHERE` and anything in a query body that is not a SELECT.
fn check_body(body: &SetExpr) -> Result<(), GuardError> {
    match body {
        SetExpr::Select(select) => {
            if select.into.is_some() {
                return Err(GuardError::ForbiddenClause("SELECT ... INTO"));
            }
            if select.prewhere.is_some() {
                return Err(GuardError::Prewhere);
            }
            Ok(())
        }
        SetExpr::Query(_) => Ok(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        _ => Err(GuardError::NotSelect),
    }
}

impl VisitorMut for Guard {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<GuardError> {
        let refused = if query.settings.is_some() {
            Some(GuardError::ForbiddenClause("SETTINGS"))
        } else if query.format_clause.is_some() {
            Some(GuardError::ForbiddenClause("FORMAT"))
        } else if query.for_clause.is_some() || !query.locks.is_empty() {
            Some(GuardError::ForbiddenClause("FOR / locking clauses"))
        } else if !query.pipe_operators.is_empty() {
            Some(GuardError::ForbiddenClause("pipe operators"))
        } else {
            check_body(&query.body).err()
        };
        if let Some(error) = refused {
            return ControlFlow::Break(error);
        }
        let mut scope = HashSet::new();
        if let Some(with) = &query.with {
            for (at, cte) in with.cte_tables.iter().enumerate() {
                let name = cte.alias.name.value.clone();
                if Table::from_name(&name).is_some() {
                    return ControlFlow::Break(GuardError::CteShadowsTable(name));
                }
                // Inside a CTE's body only the CTEs before it exist; a later name (its own
                // included) would be read as the table of that name by a server with CTEs.
                let later: HashSet<&str> = with.cte_tables[at..]
                    .iter()
                    .map(|later| later.alias.name.value.as_str())
                    .collect();
                if let Some(used) = table_names(&cte.query)
                    .into_iter()
                    .find(|t| later.contains(t.as_str()))
                {
                    return ControlFlow::Break(GuardError::CteOrder(used));
                }
                scope.insert(name);
            }
        }
        self.cte_scopes.push(scope);
        let narrowing = match query.body.as_ref() {
            SetExpr::Select(select) => self.narrowing(select),
            _ => None,
        };
        self.narrowing.push(narrowing);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<GuardError> {
        self.narrowing.pop();
        self.cte_scopes.pop();
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<GuardError> {
        let result = match &mut *factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let parts = name_parts(name);
                if args.is_some() {
                    Err(GuardError::TableFunction(name.to_string()))
                } else if parts.len() != 1 {
                    Err(GuardError::QualifiedTable(name.to_string()))
                } else if self.is_cte(&parts[0]) {
                    Ok(None)
                } else if let Some(table) = Table::from_name(&parts[0]) {
                    // The innermost query's narrowing, if it is for this very table.
                    let referred = alias
                        .as_ref()
                        .map_or(parts[0].as_str(), |a| a.name.value.as_str());
                    let narrowing = match self.narrowing.last_mut() {
                        Some(slot)
                            if slot
                                .as_ref()
                                .is_some_and(|n| n.table == table && n.name == referred) =>
                        {
                            slot.take()
                        }
                        _ => None,
                    };
                    let subquery = self.project_rows(table, narrowing.as_ref());
                    let alias = alias.clone().unwrap_or_else(|| TableAlias {
                        explicit: true,
                        name: sqlparser::ast::Ident::new(parts[0].clone()),
                        columns: Vec::new(),
                        at: None,
                    });
                    Ok(Some(TableFactor::Derived {
                        lateral: false,
                        subquery,
                        alias: Some(alias),
                        sample: None,
                    }))
                } else {
                    Err(GuardError::TableNotAllowed(parts[0].clone()))
                }
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => Ok(None),
            other => Err(GuardError::TableFunction(other.to_string())),
        };
        match result {
            Ok(Some(scoped)) => {
                // Replaced after its children were visited: the scoped subquery is not revisited.
                *factor = scoped;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<GuardError> {
        match table_in_expression(expr) {
            Some(error) => ControlFlow::Break(error),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Why `expr` may not be sent: a forbidden function, or a table ClickHouse would read from
/// an expression (`x IN traces`, `x IN (system.one)`, `in(x, traces)`), which no derived
/// table scopes.
fn table_in_expression(expr: &Expr) -> Option<GuardError> {
    if let Some(maker) = decimal_maker(expr) {
        return Some(GuardError::Decimal(maker));
    }
    match expr {
        Expr::Function(function) => {
            let parts = name_parts(&function.name);
            let name = parts.last().map(|n| n.to_lowercase()).unwrap_or_default();
            if let Some((_, advice)) = CRASHING_FUNCTIONS.iter().find(|(f, _)| name.starts_with(f)) {
                return Some(GuardError::CrashingFunction {
                    name: function.name.to_string(),
                    advice,
                });
            }
            (parts.len() != 1
                || FORBIDDEN_FUNCTIONS.iter().any(|f| name.starts_with(f))
                || is_membership_function(&name))
            .then(|| GuardError::ForbiddenFunction(function.name.to_string()))
        }
        Expr::In { target, .. } => match target {
            InTarget::Table { name, .. } => Some(GuardError::TableInExpression(name.to_string())),
            InTarget::Unnest(_) => Some(GuardError::ForbiddenClause("IN UNNEST")),
            InTarget::List(list) => match list.as_slice() {
                [single] => match unparenthesized(single) {
                    name @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {
                        Some(GuardError::TableInExpression(name.to_string()))
                    }
                    _ => None,
                },
                _ => None,
            },
            InTarget::Subquery(_) => None,
        },
        _ => None,
    }
}

/// `expr`, when it can make a decimal: `toDecimal*()`, a cast to a decimal type (or the
/// function form of a cast whose type is not a plain string naming another type).
fn decimal_maker(expr: &Expr) -> Option<String> {
    let names_decimal = |type_name: &str| {
        let type_name = type_name.to_lowercase();
        ["dec", "numeric", "fixed"].iter().any(|t| type_name.contains(t))
    };
    match expr {
        Expr::Cast { data_type, .. } | Expr::TypedString(TypedString { data_type, .. })
            if names_decimal(&data_type.to_string()) =>
        {
            Some(expr.to_string())
        }
        Expr::Function(function) => {
            // The name as ClickHouse reads it: `toDecimal128` quoted is still toDecimal128.
            let parts = name_parts(&function.name);
            let name = parts.last().map(|n| n.to_lowercase()).unwrap_or_default();
            if name.starts_with("todecimal") {
                return Some(function.name.to_string());
            }
            if !(name.contains("cast")) {
                return None;
            }
            // CAST(x, 'Type'): the type must be a literal string ClickHouse reads as written.
            let FunctionArguments::List(list) = &function.args else {
                return Some(expr.to_string());
            };
            let type_is_plain = match list.args.as_slice() {
                [
                    _,
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(type_name),
                        ..
                    }))),
                ] => !names_decimal(type_name),
                _ => false,
            };
            (!type_is_plain).then(|| expr.to_string())
        }
        _ => None,
    }
}

fn unparenthesized(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => unparenthesized(inner),
        other => other,
    }
}

/// ClickHouse's functional forms of `IN` (`in`, `notIn`, `globalNullIn`, `inIgnoreSet`, …),
/// whose second argument may name a table. The operator form is checked instead.
fn is_membership_function(lowercase: &str) -> bool {
    let name = lowercase.strip_prefix("global").unwrap_or(lowercase);
    let name = name.strip_prefix("not").unwrap_or(name);
    let name = name.strip_prefix("null").unwrap_or(name);
    let name = name.strip_prefix("not").unwrap_or(name);
    matches!(name, "in" | "inignoreset")
}

/// The derived table's columns: every column of `table` a query may name, in the table's
/// order, with each decimal (the costs) as `Float64`. ClickHouse 18.16 crashes (a segfault that
/// takes every tenant down) reading a 128-bit decimal back from an aggregation (`GROUP BY` a
/// `sum(total_cost)` with another key, `groupArray`/`groupUniqArray` over one), and the sum of
/// any `Decimal64` is one; with no decimal column and no way to make one
/// ([`decimal_maker`]), no analyst query can hold one.
fn readable_columns(table: Table) -> String {
    let schema = table.schema();
    let stored = schema.fields().iter().map(|field| {
        let name = field.name();
        match field.data_type() {
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => {
                format!("toFloat64({name}) AS {name}")
            }
            _ => name.clone(),
        }
    });
    let filled = table
        .insert_time_column()
        .into_iter()
        .chain(table.materialized_column())
        .map(str::to_owned);
    stored.chain(filled).collect::<Vec<_>>().join(", ")
}

fn project_filter(project_id: Uuid) -> String {
    format!("project_id = '{project_id}'")
}

/// Parses SQL the guard wrote itself (catalog names, a UUID), never the caller's.
fn trusted_query(sql: &str) -> Box<Query> {
    match Parser::parse_sql(&ClickHouseDialect {}, sql)
        .expect("the guard's own SQL parses")
        .pop()
    {
        Some(Statement::Query(query)) => query,
        _ => unreachable!("the guard's own SQL is a SELECT"),
    }
}

fn and(left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    }
}

/// Checks `sql` and rewrites it so it reads only `project_id`'s rows. Returns the SQL to send
/// (without a FORMAT clause: the caller adds the output format).
pub fn scope_to_project(sql: &str, project_id: Uuid) -> Result<String, GuardError> {
    let mut statements =
        Parser::parse_sql(&ClickHouseDialect {}, sql).map_err(|e| GuardError::Parse(e.to_string()))?;
    if statements.len() != 1 {
        return Err(GuardError::StatementCount(statements.len()));
    }
    let mut statement = statements.pop().expect("one statement");
    if !matches!(statement, Statement::Query(_)) {
        return Err(GuardError::NotSelect);
    }
    let mut guard = Guard {
        project_id,
        cte_scopes: Vec::new(),
        narrowing: Vec::new(),
    };
    if let ControlFlow::Break(error) = statement.visit(&mut guard) {
        return Err(error);
    }
    render::verified(statement, project_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);

    fn scoped(sql: &str) -> String {
        scope_to_project(sql, PROJECT).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn wraps_every_table_reference() {
        let sql = scoped(
            "WITH recent AS (SELECT trace_id FROM observations WHERE start_time_us > 0) \
             SELECT t.name, count() FROM traces AS t JOIN recent ON recent.trace_id = t.id \
             WHERE t.id IN (SELECT trace_id FROM scores) GROUP BY t.name \
             UNION ALL SELECT name, 0 FROM traces",
        );
        let scope = format!("project_id = '{PROJECT}'");
        assert_eq!(sql.matches(&scope).count(), 4, "{sql}");
        assert!(sql.contains("ORDER BY version DESC LIMIT 1 BY id) AS t"), "{sql}");
        assert!(!sql.contains("FROM traces AS t"), "{sql}");
    }

    #[test]
    fn the_caller_filter_cannot_be_widened() {
        let sql = scoped("SELECT * FROM traces WHERE project_id = 'other' OR 1 = 1");
        assert!(sql.starts_with("SELECT * FROM (SELECT project_id, id, "), "{sql}");
        assert!(
            sql.contains(&format!(
                ", timestamp FROM traces PREWHERE project_id = '{PROJECT}' WHERE"
            )),
            "{sql}"
        );
    }

    #[test]
    fn where_conditions_narrow_the_derived_table_without_changing_the_answer() {
        let project = format!("project_id = '{PROJECT}'");
        // A condition on the sorting key applies before deduplication; another one keeps the
        // ids of which some version matches, and the analyst's WHERE still judges the newest.
        let sql = scoped(
            "SELECT o.id FROM observations AS o WHERE o.trace_id = 't1' AND (model = 'm' OR level = 'error') AND start_time_us > 5",
        );
        let columns = readable_columns(Table::Observations);
        assert!(
            sql.contains(&format!(
                "FROM observations PREWHERE {project} WHERE (trace_id = 't1') AND (start_time_us > 5) \
                 AND (id) IN (SELECT id FROM (SELECT {columns} FROM observations PREWHERE {project}) \
                 WHERE ((model = 'm' OR level = 'error'))) \
                 ORDER BY version DESC LIMIT 1 BY id) AS o WHERE o.trace_id = 't1'"
            )),
            "{sql}"
        );
        // Not copied: a join, a subquery, a SELECT alias shadowing a column, another table's column.
        for sql in [
            "SELECT * FROM traces AS t JOIN scores AS s ON s.trace_id = t.id WHERE t.name = 'x'",
            "SELECT * FROM traces WHERE id IN (SELECT trace_id FROM scores)",
            "SELECT upper(name) AS user_id FROM traces WHERE user_id = 'X'",
            "SELECT * FROM traces WHERE other.name = 'x'",
        ] {
            let rewritten = scoped(sql);
            assert!(!rewritten.contains(&format!("{project} WHERE")), "{rewritten}");
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        let cases: &[(&str, GuardError)] = &[
            ("SELECT 1; SELECT 2", GuardError::StatementCount(2)),
            ("DROP TABLE traces", GuardError::NotSelect),
            (
                "SELECT * FROM system.tables",
                GuardError::QualifiedTable("system.tables".into()),
            ),
            (
                "SELECT * FROM numbers(10)",
                GuardError::TableFunction("numbers".into()),
            ),
            ("SELECT * FROM users", GuardError::TableNotAllowed("users".into())),
            (
                "SELECT * FROM traces SETTINGS max_threads = 1",
                GuardError::ForbiddenClause("SETTINGS"),
            ),
            (
                "SELECT * FROM traces FORMAT CSV",
                GuardError::ForbiddenClause("FORMAT"),
            ),
            (
                "SELECT dictGet('d', 'a', 1)",
                GuardError::ForbiddenFunction("dictGet".into()),
            ),
            (
                "SELECT toString(replicate('x', tags)) FROM traces",
                GuardError::CrashingFunction {
                    name: "replicate".into(),
                    advice: CRASHING_FUNCTIONS[0].1,
                },
            ),
            (
                "SELECT toDecimal64(total_cost, 12) FROM observations",
                GuardError::Decimal("toDecimal64".into()),
            ),
            (
                "SELECT CAST(total_cost AS Decimal(38, 12)) FROM observations",
                GuardError::Decimal("CAST(total_cost AS DECIMAL(38,12))".into()),
            ),
            (
                "SELECT total_cost::Decimal128(2) FROM observations",
                GuardError::Decimal("total_cost::Decimal128(2)".into()),
            ),
            (
                "SELECT CAST(total_cost, 'Decimal128(2)') FROM observations",
                GuardError::Decimal("CAST(total_cost, 'Decimal128(2)')".into()),
            ),
            (
                "SELECT `toDecimal128`(total_cost, 12) FROM observations",
                GuardError::Decimal("`toDecimal128`".into()),
            ),
            (
                "SELECT \"CAST\"(total_cost, 'Decimal128(2)') FROM observations",
                GuardError::Decimal("\"CAST\"(total_cost, 'Decimal128(2)')".into()),
            ),
            (
                "SELECT cast(total_cost, concat('Deci', 'mal128(2)')) FROM observations",
                GuardError::Decimal("cast(total_cost, concat('Deci', 'mal128(2)'))".into()),
            ),
            (
                "WITH traces AS (SELECT 1) SELECT * FROM traces",
                GuardError::CteShadowsTable("traces".into()),
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(scope_to_project(sql, PROJECT).as_ref(), Err(expected), "{sql}");
        }
    }

    /// The attacks of issue 34: text sqlparser and ClickHouse lex differently, tables named
    /// inside expressions. Each is refused or sent in a form that reads only the caller's rows.
    #[test]
    fn string_literals_cannot_smuggle_sql() {
        let attack = r"SELECT 'x\\' AS a, ' AS b, project_id, id, name FROM traces --' AS c FROM scores";
        let sql = scoped(attack);
        // Written back with the backslash escaped, so ClickHouse reads the same one string.
        assert!(sql.starts_with(r"SELECT 'x\\' AS a, ' AS b, project_id, id, name FROM traces --' AS c FROM (SELECT project_id, "), "{sql}");
        assert_eq!(
            lexer::string_literals(&sql).unwrap()[..2],
            [
                r"x\".to_string(),
                " AS b, project_id, id, name FROM traces --".into()
            ]
        );
        for (attack, literal) in [
            (
                r"SELECT 'a\'b', 'it''s', 'x\\\'' FROM traces",
                vec!["a'b", "it's", r"x\'"],
            ),
            (
                "SELECT 'line\nbreak -- not a comment' FROM traces",
                vec!["line\nbreak -- not a comment"],
            ),
        ] {
            let sql = scoped(attack);
            assert_eq!(
                lexer::string_literals(&sql).unwrap()[..literal.len()],
                literal,
                "{sql}"
            );
        }
    }

    #[test]
    fn text_that_would_read_differently_is_refused() {
        for attack in [
            "SELECT $$x$$ FROM traces",
            "SELECT E'x' FROM traces",
            "SELECT `a\\`b` FROM traces",
            "SELECT 1 AS \"a\"\"b\" FROM traces",
        ] {
            assert!(
                scope_to_project(attack, PROJECT).is_err(),
                "{attack} was accepted: {:?}",
                scope_to_project(attack, PROJECT)
            );
        }
    }

    #[test]
    fn tables_inside_expressions_are_refused() {
        for attack in [
            "SELECT 1 FROM scores WHERE 0 IN (system.one)",
            "SELECT 1 FROM scores WHERE (id, name) IN (traces)",
            "SELECT 1 FROM scores WHERE id IN traces",
            "SELECT 1 FROM scores WHERE id IN ((traces))",
            "SELECT in(id, traces) FROM scores",
            "SELECT globalNotIn(id, traces) FROM scores",
            "SELECT notNullInIgnoreSet(id, traces) FROM scores",
        ] {
            match scope_to_project(attack, PROJECT) {
                Err(
                    GuardError::TableInExpression(_)
                    | GuardError::ForbiddenFunction(_)
                    | GuardError::Parse(_),
                ) => {}
                other => panic!("{attack}: {other:?}"),
            }
        }
        // A list of values or a subquery is still fine.
        scoped(
            "SELECT 1 FROM scores WHERE id IN ('a') AND trace_id IN (SELECT id FROM traces) AND (1, 2) IN ((1, 2))",
        );
        // Functions that merely start like IN.
        scoped("SELECT intDiv(1, 2), indexOf([1], 1), initializeAggregation('sumState', 1) FROM traces");
    }

    #[test]
    fn narrowing_copies_are_syntax_not_text() {
        // A condition with a string that ends in a backslash, copied into the derived table.
        let sql = scoped(r"SELECT id FROM observations WHERE model = 'x\\' AND name = ' OR 1 = 1 --'");
        let literals = lexer::string_literals(&sql).unwrap();
        assert_eq!(literals.iter().filter(|l| *l == r"x\").count(), 2, "{sql}");
        assert_eq!(
            literals.iter().filter(|l| *l == " OR 1 = 1 --").count(),
            2,
            "{sql}"
        );
        // A double minus stays two tokens.
        assert!(scoped("SELECT - -1 FROM traces").starts_with("SELECT - -1 FROM"));
    }
}
