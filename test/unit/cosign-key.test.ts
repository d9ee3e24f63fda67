// cosign's encrypted private key as skopeo 1.18 writes it (scrypt + NaCl secretbox), read by skiff:
// the decrypted key is the one whose public half skopeo wrote beside it.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCosignPrivateKey, readPassphrase } from '../../src/trust/cosign-key.js';

const run = promisify(execFile);
let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-cosign-key-'));
  fs.writeFileSync(file('pass'), 'correct horse\n');
  await run('/opt/skopeo-modern/skopeo', [
    'generate-sigstore-key',
    '--output-prefix',
    file('k'),
    '--passphrase-file',
    file('pass'),
  ]);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('readCosignPrivateKey', () => {
  it('decrypts the key skopeo generated: its public half is the .pub skopeo wrote', async () => {
    const key = await readCosignPrivateKey(file('k.private'), await readPassphrase(file('pass')));
    expect(crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' })).toBe(
      fs.readFileSync(file('k.pub'), 'utf8'),
    );
  });

  it('a wrong passphrase, or one flipped ciphertext bit, fails the Poly1305 tag', async () => {
    await expect(readCosignPrivateKey(file('k.private'), 'correct horse ')).rejects.toThrow(
      /wrong passphrase/,
    );
    const pem = fs.readFileSync(file('k.private'), 'utf8');
    const body = pem
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    const doc = JSON.parse(Buffer.from(body, 'base64').toString());
    const sealed = Buffer.from(doc.ciphertext, 'base64');
    sealed[sealed.length - 1]! ^= 1;
    doc.ciphertext = sealed.toString('base64');
    fs.writeFileSync(
      file('flipped'),
      `-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n${Buffer.from(JSON.stringify(doc)).toString('base64')}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n`,
    );
    await expect(readCosignPrivateKey(file('flipped'), 'correct horse')).rejects.toThrow(/wrong passphrase/);
  });

  it('a file that is no encrypted key says so', async () => {
    await expect(readCosignPrivateKey(file('k.pub'), 'x')).rejects.toThrow(
      /not an encrypted cosign\/sigstore private key/,
    );
  });
});
