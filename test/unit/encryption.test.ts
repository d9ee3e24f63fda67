// Decryption of ocicrypt layers against images written by Debian's skopeo (fixtures/parts/encrypted.sh).
// The end-to-end proof for each fixture: decrypt, gunzip, and the sha256 must be the config's DiffID.
import {
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, type Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, VerificationError } from '../../src/errors/index.js';
import {
  AES_256_CTR_HMAC_SHA256,
  createDecryptStream,
  type DecryptionKey,
  decryptedMediaType,
  ENC_KEYS_JWE,
  ENC_PUBOPTS,
  EncryptStream,
  encryptionAnnotations,
  isEncryptedMediaType,
  type LayerKey,
  loadDecryptionKeys,
  loadEncryptionKeys,
  readEncryptionInfo,
  unwrapLayerKey,
} from '../../src/formats/encryption/index.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures');
const KEYS = path.join(FIXTURES, 'keys');
const keyPath = (name: string) => path.join(KEYS, name);

interface Layer {
  mediaType: string;
  digest: string;
  annotations: Record<string, string>;
  blob: Buffer;
  diffID: string;
}

const sha256 = (data: Uint8Array) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Reads an OCI layout with plain fs + JSON: index.json → the `latest` manifest → config and layers. */
function readLayers(image: string): Layer[] {
  const dir = path.join(FIXTURES, 'images', image);
  const blob = (digest: string) => {
    const data = readFileSync(path.join(dir, 'blobs', ...digest.split(':')));
    expect(sha256(data), `blob ${digest} of ${image}`).toBe(digest);
    return data;
  };
  const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const desc = index.manifests.find(
    (d: { annotations?: Record<string, string> }) =>
      d.annotations?.['org.opencontainers.image.ref.name'] === 'latest',
  );
  const manifest = JSON.parse(blob(desc.digest).toString('utf8'));
  const config = JSON.parse(blob(manifest.config.digest).toString('utf8'));
  expect(config.rootfs.diff_ids).toHaveLength(manifest.layers.length);
  return manifest.layers.map(
    (l: { mediaType: string; digest: string; annotations?: Record<string, string> }, i: number) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      annotations: l.annotations ?? {},
      blob: blob(l.digest),
      diffID: config.rootfs.diff_ids[i],
    }),
  );
}

/** Writes `chunks` into the stream one at a time and gathers what comes out. */
async function runThrough(stream: Transform, chunks: Iterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.push(chunk);
      done();
    },
  });
  await pipeline(Readable.from(chunks, { objectMode: false }), stream, sink);
  return Buffer.concat(out);
}

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

async function decrypt(layer: Layer, keys: DecryptionKey[], chunkSize = 64 * 1024): Promise<Buffer> {
  const layerKey = await unwrapLayerKey(layer.annotations, keys);
  return runThrough(createDecryptStream(layerKey), chunksOf(layer.blob, chunkSize));
}

/** Encrypts the way ocicrypt does (independently of the code under test): AES-256-CTR, HMAC over the ciphertext. */
function ocicryptEncrypt(plaintext: Buffer): { ciphertext: Buffer; layerKey: LayerKey } {
  const symKey = randomBytes(32);
  const nonce = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', symKey, nonce);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const hmac = createHmac('sha256', symKey).update(ciphertext).digest();
  return { ciphertext, layerKey: { symKey, nonce, hmac, cipher: AES_256_CTR_HMAC_SHA256 } };
}

let rsa: DecryptionKey[];
let ec: DecryptionKey[];
let wrong: DecryptionKey[];
let tmp: string;

beforeAll(async () => {
  rsa = await loadDecryptionKeys([`jwe:${keyPath('rsa.pem')}`]);
  ec = await loadDecryptionKeys([keyPath('ec.pem')]);
  wrong = await loadDecryptionKeys([keyPath('wrong-rsa.pem')]);
  tmp = mkdtempSync(path.join(tmpdir(), 'skiff-enc-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('skopeo-encrypted fixtures decrypt to the config DiffIDs', () => {
  const cases: [string, () => DecryptionKey[], number][] = [
    ['encrypted-rsa', () => rsa, 2],
    ['encrypted-ec', () => ec, 2],
    ['encrypted-partial', () => rsa, 1],
    ['encrypted-two-recipients', () => rsa, 2],
    ['encrypted-two-recipients', () => ec, 2],
  ];
  it.each(cases)('%s (key %#)', async (image, keys, encryptedCount) => {
    const layers = readLayers(image);
    let encrypted = 0;
    for (const layer of layers) {
      let compressed = layer.blob;
      if (isEncryptedMediaType(layer.mediaType)) {
        encrypted++;
        expect(decryptedMediaType(layer.mediaType)).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
        compressed = await decrypt(layer, keys());
        // ocicrypt's private options carry the digest of the blob before encryption: it must match too.
        expect(sha256(compressed)).toBe((await unwrapLayerKey(layer.annotations, keys())).plainDigest);
      }
      expect(sha256(gunzipSync(compressed))).toBe(layer.diffID);
    }
    expect(encrypted).toBe(encryptedCount);
  });

  it('--encrypt-layer 1 encrypted the top layer only', () => {
    const layers = readLayers('encrypted-partial');
    expect(layers.map((l) => isEncryptedMediaType(l.mediaType))).toEqual([false, true]);
    expect(readEncryptionInfo(layers[0]!.annotations)).toBeUndefined();
  });

  it('the HMAC is HMAC-SHA256 keyed with the layer key over the whole ciphertext', async () => {
    const [layer] = readLayers('encrypted-rsa');
    const layerKey = await unwrapLayerKey(layer!.annotations, rsa);
    expect(createHmac('sha256', layerKey.symKey).update(layer!.blob).digest()).toEqual(layerKey.hmac);
    expect(layerKey.nonce).toHaveLength(16);
    expect(layerKey.cipher).toBe('AES_256_CTR_HMAC_SHA256');
  });
});

describe('unwrapLayerKey', () => {
  it('a key that is no recipient fails, naming the recipients', async () => {
    const [layer] = readLayers('encrypted-two-recipients');
    const error = await unwrapLayerKey(layer!.annotations, wrong).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as VerificationError).exitCode).toBe(4);
    expect((error as Error).message).toBe(
      'no decryption key fits this layer (recipients: RSA-OAEP/RSA, ECDH-ES+A256KW/EC P-256)',
    );
  });

  it('an EC key does not open an RSA-only layer, and the right key among wrong ones does', async () => {
    const [layer] = readLayers('encrypted-rsa');
    await expect(unwrapLayerKey(layer!.annotations, [...ec, ...wrong])).rejects.toThrow(
      /no decryption key fits this layer \(recipients: RSA-OAEP\/RSA\)$/,
    );
    const layerKey = await unwrapLayerKey(layer!.annotations, [...wrong, ...ec, ...rsa]);
    expect(layerKey.symKey).toHaveLength(32);
  });

  it('no keys: says a --decryption-key is needed', async () => {
    const [layer] = readLayers('encrypted-ec');
    const error = await unwrapLayerKey(layer!.annotations, []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as Error).message).toMatch(/--decryption-key is needed.*ECDH-ES\+A256KW\/EC P-256/);
  });

  it('refuses an unknown cipher, a missing pubopts annotation and non-jwe-only layers', async () => {
    const [layer] = readLayers('encrypted-rsa');
    const pubopts = JSON.parse(Buffer.from(layer!.annotations[ENC_PUBOPTS]!, 'base64').toString());
    const other = Buffer.from(JSON.stringify({ ...pubopts, cipher: 'AES_128_GCM' })).toString('base64');
    await expect(unwrapLayerKey({ ...layer!.annotations, [ENC_PUBOPTS]: other }, rsa)).rejects.toThrow(
      /unsupported layer cipher "AES_128_GCM"/,
    );
    const { [ENC_PUBOPTS]: _, ...noPubopts } = layer!.annotations;
    await expect(unwrapLayerKey(noPubopts, rsa)).rejects.toThrow(VerificationError);
    const pgpOnly = {
      'org.opencontainers.image.enc.keys.pgp': 'AAAA',
      [ENC_PUBOPTS]: layer!.annotations[ENC_PUBOPTS]!,
    };
    await expect(unwrapLayerKey(pgpOnly, rsa)).rejects.toThrow(/only for pgp keys/);
  });

  it('accepts a keys annotation listing several JWEs (recipients added later)', async () => {
    const [rsaLayer] = readLayers('encrypted-rsa');
    const annotations = { ...rsaLayer!.annotations };
    annotations[ENC_KEYS_JWE] =
      `${readLayers('encrypted-ec')[0]!.annotations[ENC_KEYS_JWE]},${annotations[ENC_KEYS_JWE]}`;
    // The EC entry wraps another layer's key; only the RSA entry belongs to this body.
    expect(readEncryptionInfo(annotations)?.recipients.map((r) => r.algorithm)).toEqual([
      'ECDH-ES+A256KW',
      'RSA-OAEP',
    ]);
    const plain = await runThrough(
      createDecryptStream(await unwrapLayerKey(annotations, rsa)),
      chunksOf(rsaLayer!.blob, 4096),
    );
    expect(sha256(gunzipSync(plain))).toBe(rsaLayer!.diffID);
  });
});

describe('createDecryptStream', () => {
  it('one flipped ciphertext byte: all bytes flow, then the stream fails with an HMAC mismatch at the end', async () => {
    const [layer] = readLayers('encrypted-rsa');
    const layerKey = await unwrapLayerKey(layer!.annotations, rsa);
    const tampered = Buffer.from(layer!.blob);
    tampered[tampered.length >> 1]! ^= 0x01;

    const stream = createDecryptStream(layerKey);
    let error: unknown;
    let out = 0;
    stream.on('error', (e) => {
      error = e;
    });
    stream.on('data', (chunk: Buffer) => {
      out += chunk.length;
    });
    for (const chunk of chunksOf(tampered, 8192)) {
      stream.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
      expect(error).toBeUndefined();
    }
    expect(out).toBe(tampered.length);
    const ended = new Promise((resolve) => stream.on('error', resolve).on('end', resolve));
    stream.end();
    await ended;
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as Error).message).toMatch(/^HMAC mismatch/);
  });

  it('truncated ciphertext fails', async () => {
    const [layer] = readLayers('encrypted-ec');
    const layerKey = await unwrapLayerKey(layer!.annotations, ec);
    const cut = layer!.blob.subarray(0, layer!.blob.length - 1);
    await expect(runThrough(createDecryptStream(layerKey), chunksOf(cut, 65536))).rejects.toThrow(
      /HMAC mismatch/,
    );
    await expect(runThrough(createDecryptStream(layerKey), [])).rejects.toThrow(VerificationError);
  });

  it('1-byte and 64 KiB writes give the same plaintext', async () => {
    const [, layer] = readLayers('encrypted-two-recipients');
    const byByte = await decrypt(layer!, ec, 1);
    const byBlock = await decrypt(layer!, ec, 64 * 1024);
    expect(byByte.equals(byBlock)).toBe(true);
    expect(sha256(gunzipSync(byByte))).toBe(layer!.diffID);
  });

  it('streams: plaintext comes out long before the ciphertext ends, odd chunk sizes included', async () => {
    const plaintext = randomBytes(8 * 1024 * 1024 + 13);
    const { ciphertext, layerKey } = ocicryptEncrypt(plaintext);
    let fed = 0;
    let fedAtFirstOutput = -1;
    const source = Readable.from(
      (function* () {
        for (const chunk of chunksOf(ciphertext, 65536 + 7)) {
          fed += chunk.length;
          yield chunk;
        }
      })(),
    );
    const hash = createHash('sha256');
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (fedAtFirstOutput < 0) fedAtFirstOutput = fed;
        hash.update(chunk);
        done();
      },
    });
    await pipeline(source, createDecryptStream(layerKey), sink);
    expect(`sha256:${hash.digest('hex')}`).toBe(sha256(plaintext));
    expect(fedAtFirstOutput).toBeGreaterThan(0);
    expect(fedAtFirstOutput).toBeLessThan(ciphertext.length / 4);
  });

  it('a wrong HMAC of the right length fails; a right one passes (the check is not vacuous)', async () => {
    const plaintext = randomBytes(1000);
    const { ciphertext, layerKey } = ocicryptEncrypt(plaintext);
    expect((await runThrough(createDecryptStream(layerKey), [ciphertext])).equals(plaintext)).toBe(true);
    const bad = { ...layerKey, hmac: Buffer.from(layerKey.hmac) };
    bad.hmac[0]! ^= 0xff;
    await expect(runThrough(createDecryptStream(bad), [ciphertext])).rejects.toThrow(/HMAC mismatch/);
  });
});

describe('readEncryptionInfo', () => {
  it('lists RSA and EC recipients and the cipher', () => {
    const [layer] = readLayers('encrypted-two-recipients');
    expect(readEncryptionInfo(layer!.annotations)).toEqual({
      cipher: 'AES_256_CTR_HMAC_SHA256',
      recipients: [
        { protocol: 'jwe', algorithm: 'RSA-OAEP', keyType: 'RSA' },
        { protocol: 'jwe', algorithm: 'ECDH-ES+A256KW', keyType: 'EC', curve: 'P-256' },
      ],
    });
    expect(readEncryptionInfo(readLayers('encrypted-ec')[0]!.annotations)?.recipients).toEqual([
      { protocol: 'jwe', algorithm: 'ECDH-ES+A256KW', keyType: 'EC', curve: 'P-256' },
    ]);
  });

  it('is undefined for plain layers and rejects malformed annotations by name', () => {
    expect(readEncryptionInfo(undefined)).toBeUndefined();
    expect(readEncryptionInfo({ 'org.opencontainers.image.title': 'x' })).toBeUndefined();
    expect(() => readEncryptionInfo({ [ENC_KEYS_JWE]: 'not base64!' })).toThrow(
      new RegExp(`${ENC_KEYS_JWE.replaceAll('.', '\\.')} entry 1 is not valid base64`),
    );
    const noCiphertext = Buffer.from(JSON.stringify({ protected: 'e30' })).toString('base64');
    expect(() => readEncryptionInfo({ [ENC_KEYS_JWE]: noCiphertext })).toThrow(/field ciphertext/);
    expect(readEncryptionInfo({ 'org.opencontainers.image.enc.keys.pgp': 'AAAA' })).toEqual({
      cipher: 'unknown',
      recipients: [],
      unsupportedSchemes: ['pgp'],
    });
  });

  it('media type helpers', () => {
    expect(isEncryptedMediaType('application/vnd.oci.image.layer.v1.tar+zstd+encrypted')).toBe(true);
    expect(isEncryptedMediaType('application/vnd.oci.image.layer.v1.tar+zstd')).toBe(false);
    expect(decryptedMediaType('application/vnd.oci.image.layer.v1.tar+encrypted')).toBe(
      'application/vnd.oci.image.layer.v1.tar',
    );
    expect(decryptedMediaType('application/vnd.oci.image.layer.v1.tar')).toBe(
      'application/vnd.oci.image.layer.v1.tar',
    );
  });
});

describe('loadDecryptionKeys', () => {
  const write = (name: string, data: string | Buffer) => {
    const file = path.join(tmp, name);
    writeFileSync(file, data);
    return file;
  };
  const ecKey = () => createPrivateKey(readFileSync(keyPath('ec.pem')));
  const ecLayer = () => readLayers('encrypted-ec')[0]!;

  it('reads PKCS#8, PKCS#1, SEC1 PEM, DER and JWK, with or without the jwe: prefix', async () => {
    const sec1 = write('ec-sec1.pem', ecKey().export({ format: 'pem', type: 'sec1' }));
    const der = write('ec.der', ecKey().export({ format: 'der', type: 'sec1' }));
    const jwk = write('ec.jwk', JSON.stringify(ecKey().export({ format: 'jwk' })));
    const keys = await loadDecryptionKeys([
      keyPath('rsa.pem'),
      `jwe:${keyPath('wrong-rsa.pem')}`,
      sec1,
      der,
      jwk,
    ]);
    expect(keys.map((k) => k.key.asymmetricKeyType)).toEqual(['rsa', 'rsa', 'ec', 'ec', 'ec']);
    expect(keys[1]!.path).toBe(keyPath('wrong-rsa.pem'));
    for (const key of keys.slice(2)) {
      expect(sha256(gunzipSync(await decrypt(ecLayer(), [key])))).toBe(ecLayer().diffID);
    }
  });

  it('encrypted PEM takes a password suffix as skopeo does; a file name with ":" still works', async () => {
    const pkcs8 = write(
      'ec-enc.pem',
      ecKey().export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw:1' }),
    );
    const legacy = write(
      'ec-legacy.pem',
      ecKey().export({ format: 'pem', type: 'sec1', cipher: 'aes-128-cbc', passphrase: 'hunter2' }),
    );
    const passwordFile = write('password', 'hunter2');
    const colon = write('odd:name.pem', readFileSync(keyPath('ec.pem')));
    const keys = await loadDecryptionKeys([
      `jwe:${pkcs8}:pw:1`,
      `${pkcs8}:pass=pw:1`,
      `${legacy}:file=${passwordFile}`,
      colon,
    ]);
    for (const key of keys) expect(key.key.asymmetricKeyType).toBe('ec');
    expect(sha256(gunzipSync(await decrypt(ecLayer(), keys.slice(0, 1))))).toBe(ecLayer().diffID);
  });

  it('bad files are UsageErrors naming the path, never the password', async () => {
    const pkcs8 = write(
      'enc2.pem',
      ecKey().export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'right' }),
    );
    const cases: [string, RegExp][] = [
      [path.join(tmp, 'missing.pem'), /cannot read decryption key .*missing\.pem \(ENOENT\)/],
      [keyPath('rsa-pub.pem'), /rsa-pub\.pem holds a public key/],
      [keyPath('README.md'), /README\.md is not a private key/],
      [pkcs8, /enc2\.pem is encrypted: append :PASSWORD/],
      [`${pkcs8}:wrongpassword`, /enc2\.pem: wrong password/],
      [
        write('ed.pem', generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' })),
        /ed25519 keys cannot decrypt/,
      ],
    ];
    for (const [spec, message] of cases) {
      const error = await loadDecryptionKeys([spec]).catch((e: unknown) => e);
      expect(error, spec).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('wrongpassword');
    }
  });
});

describe('encrypting (mirror --encryption-key): what skiff writes, skiff reads back', () => {
  async function encrypt(plaintext: Buffer, chunk: number) {
    const stream = new EncryptStream();
    const out: Buffer[] = [];
    const pieces = [];
    for (let i = 0; i < plaintext.length; i += chunk) pieces.push(plaintext.subarray(i, i + chunk));
    await pipeline(
      Readable.from(pieces),
      stream,
      new Writable({
        write(c: Buffer, _e, done) {
          out.push(c);
          done();
        },
      }),
    );
    return { ciphertext: Buffer.concat(out), secrets: stream.secrets() };
  }

  it('one recipient (flattened JWE) and three (general JWE): each private key unwraps the layer key and decrypts', async () => {
    const plaintext = randomBytes(200_000);
    const { ciphertext, secrets } = await encrypt(plaintext, 4099);
    expect(ciphertext).toHaveLength(plaintext.length);
    expect(ciphertext.equals(plaintext)).toBe(false);
    const one = await loadEncryptionKeys([`jwe:${keyPath('rsa-pub.pem')}`]);
    const three = await loadEncryptionKeys([
      `jwe:${keyPath('rsa-pub.pem')}`,
      `jwe:${keyPath('ec-pub.pem')}`,
      `jwe:${keyPath('rsa.pem')}`,
    ]);
    expect(three.map((k) => k.algorithm)).toEqual(['RSA-OAEP', 'ECDH-ES+A256KW', 'RSA-OAEP']);
    const plainDigest = `sha256:${createHash('sha256').update(plaintext).digest('hex')}` as const;
    for (const [recipients, privateKeys] of [
      [one, ['rsa.pem']],
      [three, ['rsa.pem', 'ec.pem']],
    ] as const) {
      const annotations = await encryptionAnnotations({ ...secrets, plainDigest }, recipients);
      const jwe = JSON.parse(Buffer.from(annotations[ENC_KEYS_JWE]!, 'base64').toString());
      expect('recipients' in jwe).toBe(recipients.length > 1);
      for (const name of privateKeys) {
        const layerKey = await unwrapLayerKey(annotations, await loadDecryptionKeys([keyPath(name)]));
        expect(layerKey.plainDigest).toBe(plainDigest);
        const decrypted: Buffer[] = [];
        await pipeline(
          Readable.from([ciphertext]),
          createDecryptStream(layerKey),
          new Writable({
            write(c: Buffer, _e, done) {
              decrypted.push(c);
              done();
            },
          }),
        );
        expect(Buffer.concat(decrypted).equals(plaintext)).toBe(true);
      }
      const wrong = await loadDecryptionKeys([keyPath('wrong-rsa.pem')]);
      await expect(unwrapLayerKey(annotations, wrong)).rejects.toThrow('no decryption key fits');
    }
  });

  it('the options are laid out as ocicrypt writes them: hmac public, key and nonce private', async () => {
    const { secrets } = await encrypt(Buffer.from('layer'), 2);
    const [key] = await loadEncryptionKeys([`jwe:${keyPath('rsa-pub.pem')}`]);
    const annotations = await encryptionAnnotations({ ...secrets, plainDigest: `sha256:${'0'.repeat(64)}` }, [
      key!,
    ]);
    expect(JSON.parse(Buffer.from(annotations[ENC_PUBOPTS]!, 'base64').toString())).toEqual({
      cipher: AES_256_CTR_HMAC_SHA256,
      hmac: secrets.hmac.toString('base64'),
      cipheroptions: {},
    });
    // HMAC-SHA256 over the ciphertext, keyed with the layer key.
    const cipher = createCipheriv('aes-256-ctr', secrets.symKey, secrets.nonce);
    const expected = createHmac('sha256', secrets.symKey)
      .update(cipher.update(Buffer.from('layer')))
      .digest();
    expect(secrets.hmac.equals(expected)).toBe(true);
  });

  it('refuses keys it cannot encrypt for, naming the file', async () => {
    await expect(loadEncryptionKeys([keyPath('rsa-pub.pem')])).rejects.toThrow('give jwe:PUBLIC_KEY_FILE');
    await expect(loadEncryptionKeys([`pgp:${keyPath('rsa-pub.pem')}`])).rejects.toBeInstanceOf(UsageError);
    const dir = mkdtempSync(path.join(tmpdir(), 'skiff-enckey-'));
    try {
      const ed = path.join(dir, 'ed.pem');
      writeFileSync(ed, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
      await expect(loadEncryptionKeys([`jwe:${ed}`])).rejects.toThrow(`encryption key ${ed}: ed25519 keys`);
      const junk = path.join(dir, 'junk.pem');
      writeFileSync(junk, 'not a key');
      await expect(loadEncryptionKeys([`jwe:${junk}`])).rejects.toThrow(
        `encryption key ${junk} is not a public key`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
