// Drives `specula mcp` with the official MCP TypeScript SDK client
// (@modelcontextprotocol/sdk: Client + StdioClientTransport), as Claude Code
// or any SDK-based agent would. Run by tests/mcp/mcp_e2e_test.cpp against a
// real speculad; prints one line per check and exits non-zero on the first
// failure. Environment:
//   SPECULA_CLI            the specula binary
//   SPECULA_SOCKET         the daemon's socket
//   SPECULA_MCP_NODE_DIR   where scripts/setup.sh installed the SDK
//   SPECULA_E2E_DIR        a scratch dir shared with the test (restart handshake)
//   SPECULA_E2E_PATH       a path under the base that the commands create
'use strict';
const { createRequire } = require('node:module');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const nodeDir = process.env.SPECULA_MCP_NODE_DIR || '/opt/specula/mcp-node';
const sdk = createRequire(path.join(nodeDir, 'package.json'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdk('@modelcontextprotocol/sdk/client/stdio.js');
const { CallToolResultSchema } = sdk('@modelcontextprotocol/sdk/types.js');

const cli = process.env.SPECULA_CLI;
const socket = process.env.SPECULA_SOCKET;
const scratch = process.env.SPECULA_E2E_DIR;
const target = process.env.SPECULA_E2E_PATH;

function check(cond, what, detail) {
  if (!cond) {
    console.log(`FAIL ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

// The test process stops and restarts the daemon when asked through files.
async function handshake(request, answer) {
  fs.writeFileSync(path.join(scratch, request), '');
  const deadline = Date.now() + 60000;
  while (!fs.existsSync(path.join(scratch, answer))) {
    if (Date.now() > deadline) check(false, `the test answered ${request}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function text(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

async function main() {
  const transport = new StdioClientTransport({
    command: cli,
    args: ['--socket', socket, 'mcp', '--progress-ms', '200'],
    stderr: 'inherit',
  });
  const client = new Client({ name: 'specula-e2e', version: '1.0.0' });
  await client.connect(transport);  // initialize + notifications/initialized
  const info = client.getServerVersion();
  check(info && info.name === 'specula', 'serverInfo names specula', info);
  check(client.getServerCapabilities().tools !== undefined, 'the server has tools');
  check(/specula session s/.test(client.getInstructions() || ''), 'instructions name the session', client.getInstructions());
  await client.ping();
  check(true, 'ping');

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  check(JSON.stringify(names) === JSON.stringify(['bash', 'branches', 'checkpoints', 'diff', 'rollback']),
        'tools/list has the five tools', names);
  for (const t of tools) check(t.outputSchema && t.outputSchema.type === 'object', `${t.name} has an output schema`);

  // The log before anything ran: the root only. The SDK validates every
  // structuredContent against the tool's outputSchema.
  let cps = await client.callTool({ name: 'checkpoints', arguments: {} });
  check(!cps.isError && cps.structuredContent.checkpoints.length === 1, 'one checkpoint at start', cps);
  const session = cps.structuredContent.session;
  const root = cps.structuredContent.head;

  // A miss: the command runs now; the file lands in the session, not the host.
  const dir = path.dirname(target);
  let r = await client.callTool({ name: 'bash', arguments: { command: `mkdir -p ${dir} && echo one > ${target} && cat ${target}` } });
  check(!r.isError, 'bash ran', r);
  check(r.structuredContent.exit_code === 0 && r.structuredContent.stdout === 'one\n', 'bash result', r.structuredContent);
  check(r.structuredContent.hit === false, 'a command nobody speculated is a miss');
  check(text(r).includes('one') && text(r).includes('exit code 0'), 'text content has output and exit code', text(r));
  check(!fs.existsSync(target), 'the host is not written (target layer)');
  const first = r.structuredContent.head;

  // Shell state carries over between calls.
  await client.callTool({ name: 'bash', arguments: { command: `cd ${dir} && export SPECULA_E2E_VAR=kept` } });
  r = await client.callTool({ name: 'bash', arguments: { command: 'pwd; echo $SPECULA_E2E_VAR' } });
  check(r.structuredContent.stdout === `${dir}\nkept\n`, 'cwd and environment carry over', r.structuredContent);

  // A failing command: a result with its exit code and stderr, not a tool error.
  r = await client.callTool({ name: 'bash', arguments: { command: 'echo oops >&2; exit 3' } });
  check(!r.isError && r.structuredContent.exit_code === 3 && r.structuredContent.stderr === 'oops\n',
        'a failing command reports exit code 3', r);

  // A hit: another client speculates the next command, then the agent runs it.
  const next = `echo two >> ${target}; cat ${target}`;
  const spec = JSON.parse(execFileSync(cli, ['--socket', socket, '--json', 'spec', session, '--', next]).toString());
  check(typeof spec.branch === 'string', 'specula spec started a branch', spec);
  const br = await client.callTool({ name: 'branches', arguments: {} });
  check(br.structuredContent.branches.some((b) => b.branch === spec.branch), 'branches lists it', br.structuredContent);
  const bd = await client.callTool({ name: 'diff', arguments: { branch: spec.branch } });
  check(!bd.isError, 'diff of a live branch', bd);
  r = await client.callTool({ name: 'bash', arguments: { command: next } });
  check(r.structuredContent.hit === true && r.structuredContent.branch === spec.branch, 'the same command is a hit', r.structuredContent);
  check(r.structuredContent.stdout === 'one\ntwo\n', 'the hit returns the branch output', r.structuredContent);
  check(text(r).includes('speculation hit'), 'the text says hit', text(r));
  const second = r.structuredContent.head;

  // diff of the checkpoint the hit produced: the file changed.
  const d = await client.callTool({ name: 'diff', arguments: { checkpoint: second } });
  check(!d.isError, 'diff of a checkpoint', d);
  const f = d.structuredContent.files.find((x) => x.path === target);
  check(f && f.change === 'changed' && f.diff.includes('+two'), 'the checkpoint diff shows the change', d.structuredContent);
  const d1 = await client.callTool({ name: 'diff', arguments: { checkpoint: first } });
  check(d1.structuredContent.files.some((x) => x.path === target && x.change === 'added'), 'the first checkpoint added the file', d1.structuredContent);

  // A long command sends progress notifications (with a token) and survives
  // the SDK's request timeout because each progress resets it.
  const progress = [];
  r = await client.callTool({ name: 'bash', arguments: { command: 'echo started; sleep 2; echo slept' } },
                            CallToolResultSchema,
                            { onprogress: (p) => progress.push(p), timeout: 1500, resetTimeoutOnProgress: true });
  check(r.structuredContent.stdout === 'started\nslept\n', 'the long command finished', r.structuredContent);
  check(progress.length >= 3, 'progress notifications arrived', progress);
  check(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress), 'progress increases', progress);
  // The daemon streams the output: progress shows the line printed before the sleep.
  check(progress.some((p) => /; output: started$/.test(p.message || '')), 'progress carries the latest output', progress);

  // The log, then a rollback to the first checkpoint.
  cps = await client.callTool({ name: 'checkpoints', arguments: {} });
  check(cps.structuredContent.checkpoints.length >= 6 && cps.structuredContent.head !== root, 'the log grew', cps.structuredContent);
  check(text(cps).includes(first), 'the text log lists the checkpoints');
  const rb = await client.callTool({ name: 'rollback', arguments: { checkpoint: first } });
  check(!rb.isError && rb.structuredContent.head === first, 'rollback moved the head', rb);
  r = await client.callTool({ name: 'bash', arguments: { command: `cat ${target}; pwd` } });
  check(r.structuredContent.stdout.startsWith('one\n') && r.structuredContent.stdout !== `one\n${dir}\n`,
        'rolled back: file and cwd as at the first checkpoint', r.structuredContent);

  // Errors: a daemon error is a tool error with the daemon's words.
  r = await client.callTool({ name: 'rollback', arguments: { checkpoint: 'c-nope' } });
  check(r.isError === true && /not_found/.test(text(r)), 'rollback to an unknown checkpoint is a tool error', r);
  r = await client.callTool({ name: 'bash', arguments: { command: '   ' } });
  check(r.isError === true && /invalid_argument/.test(text(r)), 'a blank command is a tool error', r);
  // Bad arguments and unknown tools are protocol errors (-32602).
  for (const [name, args] of [['bash', {}], ['nope', {}], ['diff', { branch: 'b', checkpoint: 'c' }]]) {
    let code = null;
    try { await client.callTool({ name, arguments: args }); } catch (e) { code = e.code; }
    check(code === -32602, `${name} ${JSON.stringify(args)} is -32602`, code);
  }

  // The daemon goes away: a clear tool error with the hint, the server lives on.
  await handshake('stop-daemon', 'daemon-stopped');
  r = await client.callTool({ name: 'bash', arguments: { command: 'true' } });
  check(r.isError === true && /unavailable/.test(text(r)) && /hint: start it with/.test(text(r)),
        'with the daemon down, bash is a tool error with the hint', text(r));
  await client.ping();
  check(true, 'the server still answers ping');
  await handshake('start-daemon', 'daemon-started');
  r = await client.callTool({ name: 'bash', arguments: { command: `cat ${target}` } });
  check(!r.isError && r.structuredContent.stdout === 'one\n', 'after the restart the same session goes on', r);

  fs.writeFileSync(path.join(scratch, 'session'), session);
  await client.close();  // closes stdin: the server destroys its session and exits
  console.log('ALL OK');
}

main().catch((e) => {
  console.log(`FAIL exception: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
