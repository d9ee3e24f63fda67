/**
 * `mirror --sign-by-sigstore-private-key`: a cosign signature of what was pushed, as skopeo and
 * cosign write it — a simple-signing payload naming the destination reference and the manifest
 * digest, signed with the key (ECDSA/ed25519 by node:crypto), one layer of the `sha256-<hex>.sig`
 * manifest with the signature in the `dev.cosignproject.cosign/signature` annotation. Signatures
 * already there (carried from the source) are kept: ours is appended. A re-run whose signature is
 * already in place (same payload, verified by our key) writes nothing.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { type Digest, sha256 } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import {
  ImageManifestSchema,
  IndexSchema,
  isIndexMediaType,
  MediaType,
  parseDocument,
} from '../manifest/index.js';
import type { RegistryReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { putManifest, startUpload, uploadMonolithic } from '../registry/push.js';
import { COSIGN_SIMPLESIGNING } from '../trust/signatures.js';

const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/** The payload skopeo and cosign sign: the identity the policy matches, and the digest. */
export function simpleSigningPayload(identity: string, digest: Digest): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': identity },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** The name a verifier matches: the destination as written, with its tag (or digest). */
function identityOf(dst: RegistryReference, digest: Digest): string {
  return dst.tag
    ? `${dst.registry}/${dst.repository}:${dst.tag}`
    : `${dst.registry}/${dst.repository}@${digest}`;
}

async function uploadBytes(client: RegistryClient, dst: RegistryReference, bytes: Buffer): Promise<Digest> {
  const location = { endpoint: dst.endpoint, repository: dst.repository };
  const digest = sha256(bytes);
  if ((await client.headBlob(location, digest, ['pull', 'push'])) !== undefined) return digest;
  const start = await startUpload(client, location);
  if (start.kind === 'session')
    await uploadMonolithic(
      client,
      location,
      start.url,
      { digest, size: bytes.length },
      Readable.from([bytes]),
    );
  return digest;
}

/**
 * Signs what a mirror wrote at `dst`: the manifest, and for an index (`--all`) each of its
 * manifests too, as skopeo 1.18 does, since a reader that takes one platform (skiff pull, podman)
 * checks that platform's signature. True when a signature was written, false when all were there.
 */
export async function signWritten(
  client: RegistryClient,
  dst: RegistryReference,
  written: { digest: Digest; mediaType?: string | undefined },
  key: crypto.KeyObject,
  signal?: AbortSignal,
): Promise<boolean> {
  const digests = [written.digest];
  if (written.mediaType && isIndexMediaType(written.mediaType.split(';')[0]!.trim())) {
    const location = { endpoint: dst.endpoint, repository: dst.repository };
    const bytes = (await client.getManifest(location, written.digest, signal)).bytes;
    if (sha256(bytes) !== written.digest)
      throw new VerificationError(`index ${written.digest} at the destination does not match its digest`, {
        digest: written.digest,
      });
    digests.push(
      ...parseDocument(IndexSchema, bytes, `index ${written.digest}`).manifests.map((m) => m.digest),
    );
  }
  let signed = false;
  for (const digest of digests) if (await signAtDestination(client, dst, digest, key, signal)) signed = true;
  return signed;
}

/** Signs `digest` at `dst`; true when a signature was written, false when ours was already there. */
export async function signAtDestination(
  client: RegistryClient,
  dst: RegistryReference,
  digest: Digest,
  key: crypto.KeyObject,
  signal?: AbortSignal,
): Promise<boolean> {
  const location = { endpoint: dst.endpoint, repository: dst.repository };
  const tag = `sha256-${digest.slice(digest.indexOf(':') + 1)}.sig`;
  const payload = simpleSigningPayload(identityOf(dst, digest), digest);
  const payloadDigest = sha256(payload);
  const existing = (await client.headManifest(location, tag, ['pull'], signal))
    ? parseDocument(ImageManifestSchema, (await client.getManifest(location, tag, signal)).bytes, tag).layers
    : [];
  const publicKey = crypto.createPublicKey(key);
  const signedAlready = existing.some((layer) => {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    return (
      layer.digest === payloadDigest &&
      signature !== undefined &&
      crypto.verify(
        key.asymmetricKeyType === 'ed25519' ? null : 'sha256',
        payload,
        publicKey,
        Buffer.from(signature, 'base64'),
      )
    );
  });
  if (signedAlready) return false;
  const signature = crypto.sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', payload, key);
  await uploadBytes(client, dst, payload);
  const layers = [
    ...existing,
    {
      mediaType: COSIGN_SIMPLESIGNING,
      digest: payloadDigest,
      size: payload.length,
      annotations: { [SIGNATURE_ANNOTATION]: signature.toString('base64') },
    },
  ];
  // cosign's config: the payloads are the (uncompressed) layers, so they are their own DiffIDs.
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const configDigest = await uploadBytes(client, dst, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers,
    }),
  );
  await putManifest(client, location, tag, {
    bytes: manifest,
    mediaType: MediaType.ociManifest,
    digest: sha256(manifest),
  });
  return true;
}
