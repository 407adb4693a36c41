// Drives `specula mcp --listen` (MCP's Streamable HTTP transport) with the
// official TypeScript SDK client (Client + StreamableHTTPClientTransport),
// plus raw fetch calls for what a client must not get through (no token, a
// foreign Origin, no session id, a second initialize, a finished session).
// Run by tests/mcp/mcp_e2e_test.cpp against a real speculad; prints one line
// per check and exits non-zero on the first failure. Environment:
//   SPECULA_CLI, SPECULA_SOCKET, SPECULA_MCP_NODE_DIR, SPECULA_E2E_DIR (as mcp_e2e.cjs)
'use strict';
const { createRequire } = require('node:module');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const nodeDir = process.env.SPECULA_MCP_NODE_DIR || '/opt/specula/mcp-node';
const sdk = createRequire(path.join(nodeDir, 'package.json'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = sdk('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { CallToolResultSchema } = sdk('@modelcontextprotocol/sdk/types.js');

const cli = process.env.SPECULA_CLI;
const socket = process.env.SPECULA_SOCKET;
const scratch = process.env.SPECULA_E2E_DIR;

let server;
function check(cond, what, detail) {
  if (!cond) {
    console.log(`FAIL ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
    if (server) server.kill('SIGKILL');
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

function text(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

const initialize = (id) => JSON.stringify({
  jsonrpc: '2.0', id, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

async function post(url, body, headers) {
  const r = await fetch(url, {
    method: 'POST', body,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
  });
  return { status: r.status, body: await r.text(), sessionId: r.headers.get('mcp-session-id') };
}

async function main() {
  const tokenFile = path.join(scratch, 'mcp-token');
  server = spawn(cli, ['--socket', socket, 'mcp', '--listen', '127.0.0.1:0', '--token-file', tokenFile,
                       '--progress-ms', '200'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const url = await new Promise((resolve) => {
    server.stderr.on('data', (d) => {
      stderr += d.toString();
      process.stderr.write(d);
      const m = stderr.match(/Streamable HTTP on (http:\/\/\S+\/mcp)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', () => resolve(null));
  });
  check(url !== null, 'specula mcp --listen says where it listens', stderr);
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  check((fs.statSync(tokenFile).mode & 0o777) === 0o600, 'the token file is 0600');
  check(!stderr.includes(token), 'the token is not printed when it goes to a file');
  const auth = { Authorization: `Bearer ${token}` };

  // What must not get through.
  let r = await post(url, initialize(1), {});
  check(r.status === 401, 'no token: 401', r);
  r = await post(url, initialize(1), { Authorization: 'Bearer wrong-token-0123456789' });
  check(r.status === 401, 'a wrong token: 401', r);
  r = await post(url, initialize(1), { ...auth, Origin: 'http://evil.example' });
  check(r.status === 403, 'a foreign Origin: 403', r);
  r = await post(url, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), auth);
  check(r.status === 400, 'a request before initialize has no session id: 400', r);
  const get = await fetch(url, { headers: { ...auth, Accept: 'text/event-stream' } });
  check(get.status === 405, 'GET (a server-initiated stream) is 405', get.status);

  // The SDK client, as an agent would use it.
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: auth } });
  const client = new Client({ name: 'specula-http-e2e', version: '1.0.0' });
  await client.connect(transport);
  check(client.getServerVersion().name === 'specula', 'initialize over HTTP names specula');
  check(typeof transport.sessionId === 'string' && transport.sessionId.length >= 16, 'an Mcp-Session-Id came back');
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  check(JSON.stringify(tools) === JSON.stringify(['bash', 'branches', 'checkpoints', 'diff', 'rollback']),
        'tools/list over HTTP', tools);
  const hi = await client.callTool({ name: 'bash', arguments: { command: 'echo over-http > /tmp/mcp-http; cat /tmp/mcp-http' } });
  check(!hi.isError && text(hi).includes('over-http'), 'bash runs over HTTP', hi);
  check(hi.structuredContent && hi.structuredContent.exit_code === 0, 'structuredContent carries the exit code', hi.structuredContent);

  // A long call with a progress token: the reply comes as an SSE stream
  // that carries the progress notifications first.
  const progress = [];
  const long = await client.request(
    { method: 'tools/call', params: { name: 'bash', arguments: { command: 'for i in 1 2 3 4; do echo step$i; sleep 0.4; done' } } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p), timeout: 60000 });
  check(text(long).includes('step4'), 'a long command finishes', text(long));
  check(progress.length >= 1, 'progress notifications arrive over the SSE stream', progress);
  check(progress.some((p) => typeof p.message === 'string' && p.message.startsWith('bash: running for')),
        'progress says what runs', progress);

  const log = await client.callTool({ name: 'checkpoints', arguments: {} });
  check(!log.isError && text(log).length > 0, 'checkpoints over HTTP', log);

  // One MCP session per server process.
  r = await post(url, initialize(7), auth);
  check(r.status === 400 && r.body.includes('already has its MCP session'), 'a second initialize is refused', r);

  // DELETE ends it; its id is then unknown.
  const sid = transport.sessionId;
  await transport.terminateSession();
  r = await post(url, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
                 { ...auth, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-06-18' });
  check(r.status === 404, 'after DELETE the session id is 404', r);
  await client.close();

  // SIGTERM: the server removes the session it created and exits 0.
  const code = await new Promise((resolve) => {
    server.on('exit', (c, s) => resolve(s ? s : c));
    server.kill('SIGTERM');
  });
  check(code === 0, 'SIGTERM: exit 0', code);
  check(stderr.includes('destroyed the session it created'), 'its session is destroyed', stderr);
  server = undefined;
  console.log('all HTTP checks passed');
}

main().catch((e) => {
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
  if (server) server.kill('SIGKILL');
  process.exit(1);
});
