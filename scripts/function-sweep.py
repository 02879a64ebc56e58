#!/usr/bin/env python3
"""Calls every non-aggregate function of the local ClickHouse with argument shapes a tenant's
`/v1/query` can write, alone and inside common wrappers (to text, hashed, grouped, in an array),
and lists the calls after which the server stopped answering. 18.16 segfaults on some (the guard
refuses `replicate` for that: docs/security.md); run this after changing the ClickHouse version.

It crashes the server it runs against, and restarts it with scripts/stack.sh: run it only on
the local development server, never a shared one.

    eval "$(scripts/stack.sh up)"; python3 scripts/function-sweep.py
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

URL = os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:8123").rstrip("/") + "/"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Not called at all: they wait, or reach files, the network or other servers.
UNSAFE = ["sleep", "file", "url", "remote", "s3", "hdfs", "mysql", "postgresql", "jdbc", "odbc",
          "executable", "input", "cluster", "azure", "gcs", "mongodb", "redis", "sqlite", "throwif"]
# Rows like a tenant's: arrays of text (tags), text, small numbers; several rows per block.
ROWS = ("FROM (SELECT arrayJoin([['a', 'b'], ['c'], []]) AS tags, toString(rand()) AS s, "
        "toUInt64(rand() % 4) AS n)")
SHAPES = ["'x'", "'x', tags", "tags", "s, tags", "'x', [1, 2]", "[1, 2]", "s", "n", "1", "-1",
          "range(n)", "'x', range(n)", "tags, n", "[s]", "[[s]]", "NULL", "toNullable(s)",
          "[toNullable(s)]", "'x', 1", "[1, 2], [3, 4]", "tags, tags", "1, 2, 3", "'x', 'y', 'z'",
          "tuple(1, 'a')", "emptyArrayString()", "18446744073709551615"]
WRAPPERS = ["toString(X)", "length(X)", "hex(X)", "X = X", "arrayJoin([X])", "groupArray(X)",
            "any(X)", "uniq(X)", "toTypeName(X)", "[X]", "tuple(X, 1)", "if(n > 1, X, X)",
            "CAST(X AS String)", "concat(toString(X), 'a')", "sipHash64(X)"]


def query(sql, timeout=10):
    request = urllib.request.Request(URL + "?max_execution_time=5&max_memory_usage=2000000000",
                                     data=sql.encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return "ok"
    except urllib.error.HTTPError:
        return "refused"
    except Exception:
        return "dead"


def alive():
    return query("SELECT 1", timeout=3) == "ok"


def restart():
    # The crashed server may still be writing its report and holding the port.
    time.sleep(3)
    subprocess.run(["bash", "-c", f"cd {ROOT} && scripts/stack.sh up >/dev/null 2>&1"], check=False)
    for _ in range(600):
        if alive():
            return
        time.sleep(0.2)
    sys.exit("ClickHouse did not come back")


def crashed(sql):
    if query(sql) == "dead" or not alive():
        print("CRASH", sql, flush=True)
        restart()
        return True
    return False


def main():
    if not alive():
        sys.exit(f"no ClickHouse answers at {URL}")
    listing = urllib.request.urlopen(urllib.request.Request(
        URL, data=b"SELECT name FROM system.functions WHERE NOT is_aggregate ORDER BY name FORMAT TSV"))
    names = [n for n in listing.read().decode().split()
             if not any(n.lower().startswith(u) for u in UNSAFE)]
    crashes, calls = [], 0
    for name in names:
        for shape in SHAPES:
            call = f"{name}({shape})"
            calls += 1
            if crashed(f"SELECT {call} {ROWS} FORMAT Null"):
                crashes.append(call)
                continue
            for wrapper in WRAPPERS:
                calls += 1
                sql = f"SELECT {wrapper.replace('X', call)} {ROWS} FORMAT Null"
                if crashed(sql):
                    crashes.append(wrapper.replace("X", call))
    print(json.dumps({"functions": len(names), "calls": calls, "crashes": crashes}, indent=1))


if __name__ == "__main__":
    main()
