// Which certificate directory applies to a registry, as containers-certs.d(5) and containers/image
// read them: the first of $HOME's, /etc/containers' and /etc/docker's that exists, named
// HOST:PORT or HOST as the reference names the registry; --cert-dir replaces all three.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryTls } from '../../src/registry/certs.js';
import { tempDir } from '../harness/cli.js';
import { TestCa } from '../harness/pki.js';

let work: { dir: string; cleanup: () => void };
let ca: TestCa;
let home: string;
let etcContainers: string;
let etcDocker: string;
const locations = () => ({ home, systemDirs: [etcContainers, etcDocker] });

function dirWith(root: string, host: string, files: Record<string, string>): string {
  const dir = path.join(root, host);
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

beforeAll(() => {
  work = tempDir('skiff-certs-');
  ca = new TestCa(path.join(work.dir, 'pki'));
  home = path.join(work.dir, 'home');
  etcContainers = path.join(work.dir, 'etc/containers/certs.d');
  etcDocker = path.join(work.dir, 'etc/docker/certs.d');
});
afterAll(() => work?.cleanup());

describe('certs.d lookup', () => {
  it('$HOME first, then /etc/containers, then /etc/docker; the first that exists is used alone', () => {
    const pem = fs.readFileSync(ca.cert, 'utf8');
    const docker = dirWith(etcDocker, 'r.example:5000', { 'ca.crt': pem });
    expect(registryTls('r.example:5000', locations()).dir).toBe(docker);
    const containers = dirWith(etcContainers, 'r.example:5000', { 'other.crt': pem });
    expect(registryTls('r.example:5000', locations()).caFiles).toEqual([path.join(containers, 'other.crt')]);
    const user = dirWith(path.join(home, '.config/containers/certs.d'), 'r.example:5000', {});
    const tls = registryTls('r.example:5000', locations());
    expect(tls.dir).toBe(user);
    expect(tls.caFiles).toEqual([]);
    expect(tls.options.ca).toBeUndefined();
  });

  it('the directory is named as the reference names the registry: HOST without a port, HOST:PORT with one', () => {
    const pem = fs.readFileSync(ca.cert, 'utf8');
    const bare = dirWith(etcContainers, 'q.example', { 'ca.crt': pem });
    expect(registryTls('q.example', locations()).dir).toBe(bare);
    expect(registryTls('q.example:5000', locations()).dir).toBeUndefined();
  });

  it('*.crt are added to the default roots; NAME.cert with NAME.key is a client certificate', () => {
    const client = ca.client('client');
    const dir = dirWith(etcContainers, 'm.example', {
      'ca.crt': fs.readFileSync(ca.cert, 'utf8'),
      'client.cert': fs.readFileSync(client.cert, 'utf8'),
      'client.key': fs.readFileSync(client.key, 'utf8'),
    });
    const tls = registryTls('m.example', locations());
    expect(tls.clientCertFiles).toEqual([path.join(dir, 'client.cert')]);
    const roots = tls.options.ca as string[];
    expect(roots.at(-1)).toBe(fs.readFileSync(ca.cert, 'utf8'));
    expect(roots.length).toBeGreaterThan(1);
  });

  it('a key without its certificate, or a certificate without its key, is a usage error naming the file', () => {
    const lone = dirWith(etcContainers, 'k.example', { 'client.key': 'x' });
    expect(() => registryTls('k.example', locations())).toThrow(
      `key ${path.join(lone, 'client.key')} has no client certificate ${path.join(lone, 'client.cert')} beside it`,
    );
  });

  it('--cert-dir replaces the lookup, and must exist', () => {
    const own = dirWith(work.dir, 'own', { 'ca.crt': fs.readFileSync(ca.cert, 'utf8') });
    const tls = registryTls('r.example:5000', { ...locations(), certDir: own });
    expect(tls.dir).toBe(own);
    expect(tls.searched).toEqual([own]);
    expect(() => registryTls('r.example:5000', { certDir: path.join(work.dir, 'missing') })).toThrow(
      /certificate directory .*missing does not exist/,
    );
  });
});
