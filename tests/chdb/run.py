"""Runs SQL statements in chDB (ClickHouse in-process, modern engine) for the Rust tests.

stdin: a JSON array of SQL strings, run in order in one session.
stdout: a JSON array with each statement's output as text (TabSeparated by default).
A failing statement exits with status 1 and names the statement on stderr.
"""
import json
import sys

from chdb import session


def main() -> int:
    statements = json.load(sys.stdin)
    sess = session.Session()
    outputs = []
    for sql in statements:
        try:
            result = sess.query(sql, "TabSeparated")
        except Exception as error:  # chDB raises its own exception types
            print(f"chDB failed on statement:\n{sql}\n{error}", file=sys.stderr)
            return 1
        outputs.append(result.data() if hasattr(result, "data") else str(result))
    json.dump(outputs, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
