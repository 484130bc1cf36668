// The parts the console tests (and the screenshot script) stand on: the real
// `mailroom` binary on a temporary store with real plugins, the CLI, and
// headless Chromium driven by Playwright.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, copyFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The binary and the wasm components, as scripts/console-test builds them. */
export const MAILROOM = process.env.MAILROOM_BIN ?? join(root, 'target/debug/mailroom');
export const WASM = process.env.MAILROOM_WASM_DIR
  ?? join(root, 'target/wasm-guests/wasm32-wasip2/release');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Generous: every wait is for an outcome, never a fixed time. */
export const WAIT_MS = 60_000;

/**
 * `mailroom run` in a fresh directory (store, plugin folder, mailroom.toml)
 * serving HTTP on a free loopback port, with `token` if given.
 */
export async function startHost({ token } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-console-'));
  const plugins = join(dir, 'plugins');
  await mkdir(plugins);
  await writeFile(join(dir, 'mailroom.toml'), [
    '[store]', 'path = "mailroom.db"',
    '[plugins]', 'dir = "plugins"',
    '[retry]', 'max_attempts = 3', 'backoff_base = "100ms"', 'backoff_cap = "500ms"',
    '[http]', 'listen = "127.0.0.1:0"',
    '[log]', 'format = "human"', 'level = "info"', '',
  ].join('\n'));
  const env = { ...process.env, NO_COLOR: '1' };
  if (token) env.MAILROOM_HTTP_TOKEN = token;
  else delete env.MAILROOM_HTTP_TOKEN;
  const child = spawn(MAILROOM, ['run'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error(`mailroom run did not serve HTTP within ${WAIT_MS} ms:\n${log}`)), WAIT_MS);
    const read = (chunk) => {
      log += chunk;
      const found = /HTTP API listening.*?(127\.0\.0\.1:\d+)/.exec(log);
      if (found) { clearTimeout(timer); resolveBase(`http://${found[1]}`); }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`mailroom run exited (${code}):\n${log}`)); });
  });
  return {
    dir,
    base,
    /** The host's process id (hosts are listed as hostname:pid). */
    pid: child.pid,
    log: () => log,
    /** Runs a `mailroom` command on the same store; resolves to its stdout. */
    async cli(args, input) {
      const command = spawn(MAILROOM, args, {
        cwd: dir, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      const output = new Promise((ok, fail) => {
        let out = '';
        let err = '';
        command.stdout.on('data', (c) => { out += c; });
        command.stderr.on('data', (c) => { err += c; });
        command.on('error', fail);
        command.on('close', (code) => (code === 0 ? ok(out)
          : fail(new Error(`mailroom ${args.join(' ')} exited ${code}: ${err}`))));
      });
      if (input !== undefined) command.stdin.end(input);
      return output;
    },
    /** Deploys a component as the host expects: a temporary name, then a rename. */
    async deploy(component, name) {
      const tmp = join(plugins, `${name}.wasm.tmp`);
      await copyFile(join(WASM, `${component}.wasm`), tmp);
      await rename(tmp, join(plugins, `${name}.wasm`));
    },
    async undeploy(name) {
      await rm(join(plugins, `${name}.wasm`));
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.on('exit', ok));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium with a fresh profile. The flags keep it off the network. */
export async function launchBrowser({ width = 1280, height = 900 } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'mailroom-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context.setDefaultTimeout(WAIT_MS);
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  return {
    page,
    /** Uncaught errors of the page's scripts. */
    errors,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value (or throws after WAIT_MS). */
export async function eventually(what, check) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
