// Starts Debian's docker-registry (the CNCF distribution server) on a free loopback port for tests.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');

export interface RunningRegistry {
  /** host:port, e.g. 127.0.0.1:40123 */
  host: string;
  dataDir: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Accept schema1 manifests (distribution 2.8 refuses them unless told). */
  schema1?: boolean;
  /** htpasswd file content (bcrypt) to require Basic auth with. */
  htpasswd?: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-registry-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const configPath = path.join(dataDir, 'config.yml');
    let auth = '';
    if (options.htpasswd) {
      fs.writeFileSync(path.join(dataDir, 'htpasswd'), options.htpasswd);
      auth = `auth:\n  htpasswd:\n    realm: skiff-test\n    path: ${path.join(dataDir, 'htpasswd')}\n`;
    }
    fs.writeFileSync(
      configPath,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${path.join(dataDir, 'data')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '  secret: skiff-test-secret',
        options.schema1 ? 'compatibility:\n  schema1:\n    enabled: true' : '',
        auth,
      ].join('\n'),
    );
    const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const host = `127.0.0.1:${port}`;
    if (await waitReady(host, child)) {
      return { host, dataDir, stop: () => stopChild(child, dataDir) };
    }
    await stopChild(child, undefined);
    if (attempt >= 3) throw new Error(`docker-registry did not start: ${stderr.trim()}`);
  }
}

async function waitReady(host: string, child: ChildProcess): Promise<boolean> {
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

async function stopChild(child: ChildProcess, dataDir: string | undefined): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}

/** Copies an image with Debian's skopeo (the real tool), e.g. from a fixture layout into a registry. */
export async function skopeoCopy(
  src: string,
  dst: string,
  flags: string[] = [],
  skopeo = 'skopeo',
): Promise<void> {
  await execFileAsync(
    skopeo,
    ['copy', '-q', '--dest-tls-verify=false', '--src-tls-verify=false', ...flags, src, dst],
    {
      maxBuffer: 16 * 1024 * 1024,
    },
  );
}

/** The fixture transports: OCI layouts by default, dir: for Docker-format fixtures. */
export function fixtureRef(name: string): string {
  const dir = path.join(FIXTURES, name);
  return fs.existsSync(path.join(dir, 'oci-layout')) ? `oci:${dir}:latest` : `dir:${dir}`;
}

/** Pushes a committed fixture to `registry` as repo:tag, preserving its digests. */
export async function pushFixture(registry: string, fixture: string, repoTag: string): Promise<void> {
  const all = fixture === 'multi' ? ['--all'] : [];
  await skopeoCopy(fixtureRef(fixture), `docker://${registry}/${repoTag}`, ['--preserve-digests', ...all]);
}
