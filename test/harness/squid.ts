// Debian's squid as the HTTP proxy of the proxy tests, on a free loopback port. Its own hosts file
// names loopback registries (`registry.skiff.test` → 127.0.0.1), so a request for them goes
// through the proxy as for any remote registry (Go and skiff never proxy loopback addresses), and
// the proxy's access log shows every CONNECT.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './registry.js';

export interface SquidOptions {
  /** name → address, squid's own hosts file. */
  hosts: Record<string, string>;
  /** Require Basic proxy authentication with this user (407 without it). */
  user?: { name: string; password: string };
  /** Refuse every request (403). */
  denyAll?: boolean;
}

export interface Squid {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Every request logged so far (CONNECT host:port, GET http://…), after all earlier ones were. */
  requests(): Promise<Array<{ method: string; url: string }>>;
  /** The CONNECT targets (host:port) among them. */
  connects(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Named in squid's hosts file at a closed port: squid answers a request for it at once (503). */
const SENTINEL = 'sentinel.skiff.test';
const SQUID = fs.existsSync('/usr/sbin/squid') ? '/usr/sbin/squid' : 'squid';

export async function startSquid(options: SquidOptions): Promise<Squid> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-squid-'));
  // squid started as root runs as the proxy user: it must write its logs here.
  fs.chmodSync(dir, 0o777);
  const hostsFile = path.join(dir, 'hosts');
  fs.writeFileSync(
    hostsFile,
    Object.entries({ ...options.hosts, [SENTINEL]: '127.0.0.1' })
      .map(([name, address]) => `${address} ${name}\n`)
      .join(''),
  );
  const accessLog = path.join(dir, 'access.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'squid.conf');
    fs.writeFileSync(config, squidConfig(dir, port, hostsFile, accessLog, options));
    const child = spawn(SQUID, ['-N', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    if (await waitListening(port, child)) {
      let sentinel = 0;
      // squid logs a tunnel when it closes: a request of our own, logged after those before it,
      // tells us the log is complete up to now.
      const requests = async () => {
        const mark = `/sentinel-${sentinel++}`;
        await plainRequestThrough(port, `http://${SENTINEL}:1${mark}`);
        for (;;) {
          const lines = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n') : [];
          if (lines.some((l) => l.includes(mark))) {
            return lines
              .map((l) => l.split(/\s+/))
              .filter((f) => f.length > 6 && !f[6]!.includes(SENTINEL))
              .map((f) => ({ method: f[5]!, url: f[6]! }));
          }
          await delay(50);
        }
      };
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        requests,
        connects: async () => (await requests()).filter((r) => r.method === 'CONNECT').map((r) => r.url),
        stop: async () => {
          await stopChild(child);
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child);
    if (attempt >= 3) throw new Error(`squid did not start: ${stderr}${readOr(path.join(dir, 'cache.log'))}`);
  }
}

function squidConfig(
  dir: string,
  port: number,
  hostsFile: string,
  accessLog: string,
  options: SquidOptions,
): string {
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `hosts_file ${hostsFile}`,
    'visible_hostname skiff-test-proxy',
    'cache deny all',
    `access_log stdio:${accessLog}`,
    `cache_log ${path.join(dir, 'cache.log')}`,
    'pid_filename none',
    'pinger_enable off',
    'shutdown_lifetime 0 seconds',
    `coredump_dir ${dir}`,
  ];
  if (options.user) {
    const passwd = path.join(dir, 'passwd');
    const hash = execFileSync('openssl', ['passwd', '-1', options.user.password], {
      encoding: 'utf8',
    }).trim();
    fs.writeFileSync(passwd, `${options.user.name}:${hash}\n`, { mode: 0o644 });
    lines.push(
      `auth_param basic program /usr/lib/squid/basic_ncsa_auth ${passwd}`,
      'auth_param basic realm skiff-test-proxy',
      'acl authenticated proxy_auth REQUIRED',
      'http_access allow authenticated',
    );
  }
  lines.push(options.denyAll || options.user ? 'http_access deny all' : 'http_access allow all');
  return `${lines.join('\n')}\n`;
}

/** A GET through the proxy, answered (an error page) and logged whatever the proxy's rules. */
function plainRequestThrough(port: number, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', () => {});
    socket.once('end', () => resolve());
    socket.once('error', reject);
  });
}

async function waitListening(port: number, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) return false;
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return true;
    await delay(50);
  }
  return false;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
