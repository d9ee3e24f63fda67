// Starts Debian's docker-registry (the CNCF distribution server) on a free loopback port.
// Shared by the tests (test/harness/registry.ts), the demo and the benchmarks.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** @returns {Promise<number>} a port that was free a moment ago */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * `tls` serves HTTPS with the given PEM files; `clientCAs` makes it require client certificates
 * signed by one of them (distribution's http.tls.clientcas).
 * @typedef {{ certificate: string, key: string, clientCAs?: string[] }} RegistryTls
 * @param {{ schema1?: boolean, htpasswd?: string, accessLog?: boolean, tls?: RegistryTls }} [options]
 * @returns {Promise<{ host: string, dataDir: string, logFile: string, stop(): Promise<void> }>}
 */
export async function startRegistry(options = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-registry-'));
  const logFile = path.join(dataDir, 'registry.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const configPath = path.join(dataDir, 'config.yml');
    fs.writeFileSync(configPath, registryConfig(dataDir, port, options));
    const log = fs.openSync(logFile, 'a');
    const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const host = `127.0.0.1:${port}`;
    if (await (options.tls ? waitListening(port, child) : waitReady(host, child)))
      return { host, dataDir, logFile, stop: () => stopChild(child, dataDir) };
    await stopChild(child, undefined);
    if (attempt >= 3)
      throw new Error(`docker-registry did not start: ${fs.readFileSync(logFile, 'utf8').trim()}`);
  }
}

function registryConfig(dataDir, port, options) {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    `    disabled: ${options.accessLog ? 'false' : 'true'}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dataDir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: skiff-test-secret',
  ];
  if (options.tls) {
    lines.push('  tls:', `    certificate: ${options.tls.certificate}`, `    key: ${options.tls.key}`);
    if (options.tls.clientCAs)
      lines.push('    clientcas:', ...options.tls.clientCAs.map((f) => `      - ${f}`));
  }
  if (options.schema1) lines.push('compatibility:', '  schema1:', '    enabled: true');
  if (options.htpasswd) {
    fs.writeFileSync(path.join(dataDir, 'htpasswd'), options.htpasswd);
    lines.push(
      'auth:',
      '  htpasswd:',
      '    realm: skiff-test',
      `    path: ${path.join(dataDir, 'htpasswd')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function waitReady(host, child) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) return false;
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** A TLS registry may want a client certificate: listening is the readiness there. */
async function waitListening(port, child) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) return false;
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(socket.destroy() && true));
      socket.once('error', () => resolve(false));
    });
    if (open) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function stopChild(child, dataDir) {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}
