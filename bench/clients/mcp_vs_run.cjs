// Per-call overhead of the MCP path vs a direct `specula run` (docs/benchmarks.md
// "Clients: MCP and Python"). One speculad, one `specula mcp` server driven by
// the official MCP TypeScript SDK client (Client + StdioClientTransport, as an
// SDK-based agent would), and one session for `specula run`; N rounds, each
// timing, in a rotating order so that machine noise hits all alike:
//   mcp   a `bash {command}` tool call (SDK -> stdio -> specula mcp -> daemon)
//   run   `specula run S -- command` (a new CLI process per call, as an agent
//         shelling out to it would)
//   rpc   action.commit over the daemon's socket from this process (the
//         floor both paths share: the commit itself)
// Speculation is off in both sessions, so every call is a miss. Prints p50/p90
// of each and the ratios; no figure decides anything (benchmarks never assert).
//
//   sudo node bench/clients/mcp_vs_run.cjs [--n 50] [--command true]
// Environment: SPECULA_CLI, SPECULAD (binaries; default build/bin/...),
// SPECULA_MCP_NODE_DIR (where scripts/setup.sh installed the SDK).
'use strict';
const { createRequire } = require('node:module');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const nodeDir = process.env.SPECULA_MCP_NODE_DIR || '/opt/specula/mcp-node';
const sdk = createRequire(path.join(nodeDir, 'package.json'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdk('@modelcontextprotocol/sdk/client/stdio.js');

const repo = path.resolve(__dirname, '..', '..');
const cli = process.env.SPECULA_CLI || path.join(repo, 'build', 'bin', 'specula');
const daemonBin = process.env.SPECULAD || path.join(repo, 'build', 'bin', 'speculad');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const N = Number(arg('n', '50'));
const COMMAND = arg('command', 'true');
const WARMUP = 3;

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// A line-delimited JSON-RPC connection to the daemon (docs/api.md).
class Rpc {
  constructor(socket) {
    this.sock = net.createConnection(socket);
    this.buf = '';
    this.waiting = null;
    this.nextId = 1;
    this.sock.on('data', (d) => {
      this.buf += d.toString('utf8');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line);
        if (msg.id === undefined) continue;  // a notification
        const w = this.waiting;
        this.waiting = null;
        if (msg.error) w.reject(new Error(JSON.stringify(msg.error)));
        else w.resolve(msg.result);
      }
    });
  }
  ready() { return new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); }); }
  call(method, params) {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.sock.write(JSON.stringify({ jsonrpc: '2.0', id: this.nextId++, method, params }) + '\n');
    });
  }
  close() { this.sock.end(); }
}

async function startDaemon(dir) {
  const socket = path.join(dir, 'd.sock');
  const log = fs.openSync(path.join(dir, 'd.log'), 'w');
  const child = spawn(daemonBin, ['--socket', socket, '--state-dir', path.join(dir, 'state')],
                      { stdio: ['ignore', log, log] });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const rpc = new Rpc(socket);
      await rpc.ready();
      await rpc.call('daemon.ping', {});
      rpc.close();
      return { child, socket };
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error('speculad did not start: ' + fs.readFileSync(path.join(dir, 'd.log'), 'utf8'));
      }
      await sleep(50);
    }
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'specula-bench-mcp-'));
  const { child, socket } = await startDaemon(dir);
  let mcp = null;
  let rpc = null;
  let session = null;
  try {
    mcp = new Client({ name: 'specula-bench', version: '1.0.0' });
    await mcp.connect(new StdioClientTransport({ command: cli, args: ['--socket', socket, 'mcp'], stderr: 'ignore' }));
    rpc = new Rpc(socket);
    await rpc.ready();
    session = (await rpc.call('session.create', { base: '/', target: 'layer' })).session;

    const paths = {
      mcp: async () => {
        const r = await mcp.callTool({ name: 'bash', arguments: { command: COMMAND } });
        if (r.isError || r.structuredContent.exit_code !== 0 || r.structuredContent.hit) throw new Error(JSON.stringify(r));
      },
      run: async () => {
        execFileSync(cli, ['--socket', socket, 'run', session, '--', COMMAND], { stdio: ['ignore', 'ignore', 'inherit'] });
      },
      rpc: async () => {
        const r = await rpc.call('action.commit', { session, command: COMMAND });
        if (r.exit_code !== 0 || r.hit) throw new Error(JSON.stringify(r));
      },
    };
    const names = Object.keys(paths);
    const ms = Object.fromEntries(names.map((n) => [n, []]));
    for (let i = 0; i < WARMUP + N; i++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(i + j) % names.length];  // rotate who goes first
        const t0 = process.hrtime.bigint();
        await paths[name]();
        const t = Number(process.hrtime.bigint() - t0) / 1e6;
        if (i >= WARMUP) ms[name].push(t);
      }
    }
    const row = (name) => ({ p50: quantile(ms[name], 0.5), p90: quantile(ms[name], 0.9) });
    const r = Object.fromEntries(names.map((n) => [n, row(n)]));
    console.log(`${N} calls of \`${COMMAND}\` each (after ${WARMUP} warm-up rounds), interleaved, all misses`);
    console.log('path                                      p50 ms   p90 ms');
    const label = { mcp: 'MCP bash tool call (SDK client, stdio)', run: '`specula run` (new CLI process)',
                    rpc: 'action.commit on the daemon socket' };
    for (const n of names) console.log(`${label[n].padEnd(40)} ${r[n].p50.toFixed(1).padStart(7)}  ${r[n].p90.toFixed(1).padStart(7)}`);
    console.log(`ratio mcp / run: p50 ${(r.mcp.p50 / r.run.p50).toFixed(2)}x, p90 ${(r.mcp.p90 / r.run.p90).toFixed(2)}x`);
    console.log(`overhead over the bare commit: mcp +${(r.mcp.p50 - r.rpc.p50).toFixed(1)} ms, run +${(r.run.p50 - r.rpc.p50).toFixed(1)} ms (p50)`);
    if (process.argv.includes('--json')) console.log(JSON.stringify({ n: N, command: COMMAND, ...r }));
  } finally {
    if (session) await rpc.call('session.destroy', { session }).catch(() => {});
    if (rpc) rpc.close();
    if (mcp) await mcp.close().catch(() => {});  // the server destroys its own session on EOF
    await sleep(300);
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
