/**
 * TLS settings per registry, as containers/image reads them (containers-certs.d(5)): the first of
 * `$HOME/.config/containers/certs.d/HOST[:PORT]/`, `/etc/containers/certs.d/HOST[:PORT]/` and
 * `/etc/docker/certs.d/HOST[:PORT]/` that exists (no merging), or the `--cert-dir` directory
 * instead of all three. In it: `*.crt` are CA certificates added to the default roots, `NAME.cert`
 * with `NAME.key` a client certificate. The directory is named as the image reference names the
 * registry: `registry.example:5000` for a port, `registry.example` without.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { UsageError } from '../errors/index.js';

/** Where the certs.d directories are; tests point them at temporary directories. */
export interface CertsLocations {
  /** `--cert-dir`: replaces the certs.d lookup for every registry of the client. */
  certDir?: string | undefined;
  home?: string | undefined;
  /** The system-wide certs.d directories, in the order they are tried. */
  systemDirs?: string[] | undefined;
}

export const SYSTEM_CERTS_DIRS = ['/etc/containers/certs.d', '/etc/docker/certs.d'];

export interface RegistryTls {
  /** The directory the settings came from, if any. */
  dir: string | undefined;
  /** Where skiff looked, in order (said in a certificate error). */
  searched: string[];
  caFiles: string[];
  clientCertFiles: string[];
  /** Options for tls.connect: `ca` only when the directory adds CAs (else Node's defaults). */
  options: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key'>;
}

/** The directories searched for `host` (as the reference names it), in order. */
export function certsDirCandidates(host: string, locations: CertsLocations = {}): string[] {
  if (locations.certDir) return [locations.certDir];
  const home = locations.home ?? os.homedir();
  const roots = [
    path.join(home, '.config/containers/certs.d'),
    ...(locations.systemDirs ?? SYSTEM_CERTS_DIRS),
  ];
  return roots.map((root) => path.join(root, host));
}

/** Reads the TLS settings of one registry; a client certificate without its key is a usage error. */
export function registryTls(host: string, locations: CertsLocations = {}): RegistryTls {
  const searched = certsDirCandidates(host, locations);
  const dir = searched.find(isDirectory);
  if (!dir && locations.certDir)
    throw new UsageError(`certificate directory ${locations.certDir} does not exist`);
  if (!dir) return { dir, searched, caFiles: [], clientCertFiles: [], options: {} };
  try {
    return readCertsDir(dir, searched);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read certificate directory ${dir}: ${(error as Error).message}`, {}, error);
  }
}

function readCertsDir(dir: string, searched: string[]): RegistryTls {
  const names = fs.readdirSync(dir).sort();
  const has = (name: string) => names.includes(name);
  const caFiles: string[] = [];
  const clientCertFiles: string[] = [];
  const certs: Buffer[] = [];
  const keys: Buffer[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith('.crt')) {
      caFiles.push(file);
    } else if (name.endsWith('.cert')) {
      const keyName = `${name.slice(0, -'.cert'.length)}.key`;
      if (!has(keyName))
        throw new UsageError(
          `client certificate ${file} has no key ${path.join(dir, keyName)} beside it (CA certificates end in .crt)`,
        );
      clientCertFiles.push(file);
      certs.push(fs.readFileSync(file));
      keys.push(fs.readFileSync(path.join(dir, keyName)));
    } else if (name.endsWith('.key')) {
      const certName = `${name.slice(0, -'.key'.length)}.cert`;
      if (!has(certName))
        throw new UsageError(`key ${file} has no client certificate ${path.join(dir, certName)} beside it`);
    }
  }
  const options: RegistryTls['options'] = {};
  if (caFiles.length > 0) {
    // node:tls only when a directory adds CAs: loading it would lengthen every command's start-up.
    const { getCACertificates } = process.getBuiltinModule('node:tls');
    options.ca = [...getCACertificates('default'), ...caFiles.map((f) => fs.readFileSync(f, 'utf8'))];
  }
  if (certs.length > 0) {
    options.cert = certs;
    options.key = keys;
  }
  return { dir, searched, caFiles, clientCertFiles, options };
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    // missing or unreadable: containers/image skips it too
    return false;
  }
}
