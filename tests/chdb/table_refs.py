"""ClickHouse's own parser (chDB, modern ClickHouse) judges the SQL the guard sends.

stdin: {"project": "<uuid>", "tables": [allowlisted names], "queries": [guarded SQL, ...]}
stdout: a JSON array, per query null when ClickHouse reads it as scoped, else the reason.

Scoped means, as ClickHouse parses the text (`parseQueryToJSON`): every allowlisted table is
the only table of a SELECT whose PREWHERE is `project_id = '<project>'` (so nothing else is
evaluated on other projects' rows); any other table name is a CTE in scope where it is read
(defined by an enclosing query, before the CTE it is read in); no table function, no
database-qualified table, and no name on the right of an IN (ClickHouse reads `x IN name` as a
table).
"""
import json
import sys

from chdb import session

MEMBERSHIP = {
    prefix + "in" + suffix
    for prefix in ("", "not", "null", "notnull", "global", "globalnot", "globalnull", "globalnotnull")
    for suffix in ("", "ignoreset")
}


def project_filter(node, project):
    return (
        node.get("type") == "Function"
        and node.get("name") == "equals"
        and [c.get("type") for c in node["arguments"]["children"]] == ["Identifier", "Literal"]
        and node["arguments"]["children"][0].get("name") == "project_id"
        and node["arguments"]["children"][1]["value"].get("value") == project
    )


def scoped_prewhere(prewhere, project):
    return prewhere is not None and project_filter(prewhere, project)


class Judge:
    def __init__(self, project, tables):
        self.project, self.tables, self.problems = project, set(tables), []
        self.identifiers, self.placed = 0, 0

    def walk(self, node, scope=frozenset()):
        """`scope`: the CTE names visible here."""
        if isinstance(node, list):
            for child in node:
                self.walk(child, scope)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "TableIdentifier":
            self.identifiers += 1
        if kind == "Function" and node.get("name", "").lower() in MEMBERSHIP:
            args = node.get("arguments", {}).get("children", [])
            if len(args) == 2 and args[1].get("type") in ("Identifier", "TableIdentifier"):
                self.problems.append(f"a table on the right of IN: {args[1].get('name')}")
        if kind == "TableFunction" or (kind == "TableExpression" and "table_function" in node):
            self.problems.append("a table function")
        if kind == "SelectQuery":
            # A CTE's body sees the CTEs before it; the rest of the query sees them all.
            elements = [e for e in (node.get("with") or {}).get("children", []) if e.get("type") == "WithElement"]
            visible = set(scope)
            for element in elements:
                self.walk(element, frozenset(visible))
                visible.add(element.get("name"))
            scope = frozenset(visible)
            self.select(node, scope)
            for key, value in node.items():
                if key not in ("type", "with"):
                    self.walk(value, scope)
            return
        for key, value in node.items():
            if key != "type":
                self.walk(value, scope)

    def select(self, node, scope):
        elements = (node.get("tables") or {}).get("children", [])
        for element in elements:
            expression = element.get("table_expression") or {}
            table = expression.get("database_and_table_name")
            if not table:
                continue
            self.placed += 1
            name = table.get("name", "")
            if "." in name or table.get("database"):
                self.problems.append(f"a qualified table {name}")
            elif name in scope:
                continue
            elif name in self.tables:
                if len(elements) != 1 or not scoped_prewhere(node.get("prewhere"), self.project):
                    self.problems.append(f"{name} read outside the project's PREWHERE")
            else:
                self.problems.append(f"an unknown table {name}")

    def verdict(self):
        if self.identifiers != self.placed:
            self.problems.append(f"{self.identifiers - self.placed} table names outside FROM")
        return "; ".join(self.problems) or None


def main() -> int:
    request = json.load(sys.stdin)
    sess = session.Session()
    verdicts = []
    for sql in request["queries"]:
        literal = "'" + sql.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            tree = json.loads(sess.query(f"SELECT parseQueryToJSON({literal})", "TabSeparatedRaw").data())
        except Exception as error:  # ClickHouse refuses the text: nothing runs
            verdicts.append(None if "SYNTAX_ERROR" in str(error) or "Syntax error" in str(error) else f"chDB: {error}")
            continue
        judge = Judge(request["project"], request["tables"])
        judge.walk(tree)
        verdicts.append(judge.verdict())
    json.dump(verdicts, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
