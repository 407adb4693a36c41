// One MCP `bash` call as a whole process: start `specula mcp` with the
// official SDK client (initialize, which creates the server's session), call
// `bash {command}` once, close (the server destroys its session). The peer of
// `specula run S -- command` timed from outside (docs/benchmarks.md "Clients:
// MCP and Python"); mcp_vs_run.cjs is the per-call figure that matters.
//
//   node bench/clients/mcp_oneshot.cjs SOCKET [COMMAND]
// Environment: SPECULA_CLI, SPECULA_MCP_NODE_DIR (as mcp_vs_run.cjs).
'use strict';
const { createRequire } = require('node:module');
const path = require('node:path');

const nodeDir = process.env.SPECULA_MCP_NODE_DIR || '/opt/specula/mcp-node';
const sdk = createRequire(path.join(nodeDir, 'package.json'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdk('@modelcontextprotocol/sdk/client/stdio.js');
const cli = process.env.SPECULA_CLI || path.join(__dirname, '..', '..', 'build', 'bin', 'specula');

async function main() {
  const [socket, command = 'true'] = process.argv.slice(2);
  if (!socket) throw new Error('usage: mcp_oneshot.cjs SOCKET [COMMAND]');
  const client = new Client({ name: 'specula-bench-oneshot', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: cli, args: ['--socket', socket, 'mcp'], stderr: 'inherit' }));
  const r = await client.callTool({ name: 'bash', arguments: { command } });
  await client.close();
  if (r.isError || r.structuredContent.exit_code !== 0) throw new Error(JSON.stringify(r));
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
