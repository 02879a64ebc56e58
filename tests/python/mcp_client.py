"""The official MCP Python client (PyPI `mcp`, pinned in dev.sh) against AgentTrace's MCP server,
for tests/tests/mcp.rs: over the streamable HTTP transport with a project key as a bearer token,
it initializes, pings, lists the tools and calls each tool the test names; then it connects again
the way `mcp.Client` does by default (probing the newer `server/discover`, falling back to
`initialize` on a server that answers it as an error).

Usage: mcp_client.py URL PUBLIC_KEY SECRET_KEY CALLS
  CALLS: a JSON array of {"name": tool, "arguments": {...}}

Prints one JSON line: `initialize` (the negotiated version and the server's name and version),
`tools` (name, required arguments, read-only hint), `calls` (per call: `is_error` and `text`, or
`error` {code, message} when the server answered with a JSON-RPC error) and `auto` (what the
default connection agreed on).
"""

import asyncio
import json
import sys

from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


async def main() -> None:
    url, public_key, secret_key, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    headers = {"Authorization": f"Bearer {public_key}:{secret_key}"}
    out = {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                out["initialize"] = {
                    "protocol_version": init.protocol_version,
                    "server": init.server_info.name,
                    "version": init.server_info.version,
                    "tools_capability": init.capabilities.tools is not None,
                    "instructions": init.instructions,
                }
                await session.send_ping()
                listed = await session.list_tools()
                tools = []
                for tool in listed.tools:
                    wire = tool.model_dump(by_alias=True, mode="json")
                    tools.append(
                        {
                            "name": tool.name,
                            "required": wire["inputSchema"].get("required", []),
                            "read_only": (wire.get("annotations") or {}).get("readOnlyHint"),
                        }
                    )
                out["tools"] = tools
                results = []
                for call in calls:
                    try:
                        result = await session.call_tool(call["name"], call.get("arguments"))
                        text = "\n".join(block.text for block in result.content if block.type == "text")
                        results.append({"name": call["name"], "is_error": bool(result.is_error), "text": text})
                    except MCPError as error:
                        results.append({"name": call["name"], "error": {"code": error.code, "message": error.message}})
                out["calls"] = results
    # The client's default connection: `server/discover` first, then `initialize`.
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            listed = await client.list_tools()
            out["auto"] = {"protocol_version": client.protocol_version, "tools": len(listed.tools)}
    print(json.dumps(out))


asyncio.run(main())
