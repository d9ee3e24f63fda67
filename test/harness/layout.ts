// Writes small OCI layouts for tests, including deliberately broken ones.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface LayoutLayer {
  tar: Buffer;
  compress?: 'gzip' | 'none';
  /** The blob as stored, when the test compressed `tar` itself (give `mediaType` with it). */
  blob?: Buffer;
  mediaType?: string;
  /** Override the DiffID the config records (to break it). */
  diffID?: string;
}

export interface LayoutOptions {
  layers: LayoutLayer[];
  tag?: string;
  platform?: { os: string; architecture: string; variant?: string };
  /** Extra manifest fields (e.g. a huge annotation). */
  manifestExtra?: Record<string, unknown>;
}

export interface WrittenLayout {
  dir: string;
  manifestDigest: string;
  configDigest: string;
  layers: Array<{ digest: string; diffID: string; file: string }>;
}

export function writeTestLayout(dir: string, options: LayoutOptions): WrittenLayout {
  fs.mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  const put = (bytes: Buffer) => {
    const digest = sha(bytes);
    const file = path.join(dir, 'blobs/sha256', digest.slice(7));
    fs.writeFileSync(file, bytes);
    return { digest, file, size: bytes.length };
  };
  const layers = options.layers.map((l) => {
    const blob = l.blob ?? (l.compress === 'none' ? l.tar : zlib.gzipSync(l.tar));
    const written = put(blob);
    const mediaType =
      l.mediaType ??
      (l.compress === 'none'
        ? 'application/vnd.oci.image.layer.v1.tar'
        : 'application/vnd.oci.image.layer.v1.tar+gzip');
    return { ...written, mediaType, diffID: l.diffID ?? sha(l.tar) };
  });
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = Buffer.from(
    JSON.stringify({
      ...platform,
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
      history: [],
    }),
  );
  const configBlob = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configBlob.digest,
        size: configBlob.size,
      },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      ...options.manifestExtra,
    }),
  );
  const manifestBlob = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestBlob.digest,
          size: manifestBlob.size,
          annotations: { 'org.opencontainers.image.ref.name': options.tag ?? 'latest' },
        },
      ],
    }),
  );
  return {
    dir,
    manifestDigest: manifestBlob.digest,
    configDigest: configBlob.digest,
    layers: layers.map((l) => ({ digest: l.digest, diffID: l.diffID, file: l.file })),
  };
}
