"""ClickHouse's own parser (chDB, modern ClickHouse) judges the SQL the guard sends.

stdin: {"project": "<uuid>", "tables": [allowlisted names], "queries": [guarded SQL, ...]}
stdout: a JSON array, per query null when ClickHouse reads it as scoped, else the reason.

Scoped means, as ClickHouse parses the text (`parseQueryToJSON`): every allowlisted table is
the only table of a SELECT whose WHERE is, or begins with, `project_id = '<project>'`; any
other table name is a CTE of the query; no table function, no database-qualified table, and
no name on the right of an IN (ClickHouse reads `x IN name` as a table).
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


def scoped_where(where, project):
    if where is None:
        return False
    if where.get("type") == "Function" and where.get("name") == "and":
        return project_filter(where["arguments"]["children"][0], project)
    return project_filter(where, project)


class Judge:
    def __init__(self, project, tables):
        self.project, self.tables, self.ctes, self.problems = project, set(tables), set(), []
        self.identifiers, self.placed = 0, 0

    def walk(self, node):
        if isinstance(node, list):
            for child in node:
                self.walk(child)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "WithElement":
            self.ctes.add(node.get("name"))
        if kind == "TableIdentifier":
            self.identifiers += 1
        if kind == "SelectQuery":
            self.select(node)
        if kind == "Function" and node.get("name", "").lower() in MEMBERSHIP:
            args = node.get("arguments", {}).get("children", [])
            if len(args) == 2 and args[1].get("type") in ("Identifier", "TableIdentifier"):
                self.problems.append(f"a table on the right of IN: {args[1].get('name')}")
        if kind == "TableFunction" or (kind == "TableExpression" and "table_function" in node):
            self.problems.append("a table function")
        for key, value in node.items():
            if key != "type":
                self.walk(value)

    def select(self, node):
        with_ = node.get("with")
        if with_:
            for element in with_.get("children", []):
                if element.get("type") == "WithElement":
                    self.ctes.add(element.get("name"))
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
            elif name in self.tables:
                if len(elements) != 1 or not scoped_where(node.get("where"), self.project):
                    self.problems.append(f"{name} read outside the project's filter")
            elif name not in self.ctes:
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
