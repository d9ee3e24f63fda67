/**
 * Docker image manifest schema 1 (docs/design.md §3): parsing, layer order and conversion to an OCI config.
 *
 * Schema1 lists layers top-first, marks empty layers with `throwaway: true` inside JSON-in-a-string
 * `v1Compatibility` entries, and may carry a JWS "signatures" block. The signature is never verified
 * or trusted: the manifest's identity is the sha256 of its payload (the document without the
 * signature block), and the manifest is read from that payload, so the bytes the digest covers are
 * the bytes that are used. Pure: no I/O.
 */
import { z } from 'zod';
import { type Digest, parseDigest, sha256 } from '../digest/index.js';
import { UsageError, VerificationError } from '../errors/index.js';
import { lazySchema } from '../util/lazy-schema.js';

export const SCHEMA1_MEDIA_TYPES: readonly string[] = Object.freeze([
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.docker.distribution.manifest.v1+json',
]);

/** docs/design.md §10: manifests are bounded before they are parsed. */
export const MAX_SCHEMA1_BYTES = 4 * 1024 * 1024;

const WHAT = 'schema1 manifest';

// ---- zod schemas -------------------------------------------------------------------------------
// Each built when first used (util/lazy-schema.ts): most runs meet no schema1 manifest.

const BlobSum = lazySchema(() =>
  z.string().transform((value, ctx) => {
    try {
      return parseDigest(value, 'digest');
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  }),
);

/** Docker's strslice: a JSON string is accepted as a one-element list (old v1 configs used both). */
const StrSlice = lazySchema(() =>
  z
    .union([z.array(z.string()), z.string().transform((s) => [s])])
    .nullish()
    .transform((v) => v ?? undefined),
);
const NullableString = lazySchema(() =>
  z
    .string()
    .nullish()
    .transform((v) => v ?? undefined),
);
/** ExposedPorts and Volumes are Go sets: `{"80/tcp": {}}`. */
const StringSet = lazySchema(() => z.record(z.string(), z.looseObject({})).nullish());

/** The image-level part of a v1 container config; container-only fields (Hostname, Tty...) pass through unused. */
const V1ConfigSchema = lazySchema(() =>
  z.looseObject({
    User: NullableString,
    ExposedPorts: StringSet,
    Env: z.array(z.string()).nullish(),
    Entrypoint: StrSlice,
    Cmd: StrSlice,
    Volumes: StringSet,
    WorkingDir: NullableString,
    Labels: z.record(z.string(), z.string()).nullish(),
    StopSignal: NullableString,
    ArgsEscaped: z.boolean().nullish(),
    Healthcheck: z.looseObject({}).nullish(),
    OnBuild: z.array(z.string()).nullish(),
    Shell: StrSlice,
  }),
);

/** One `v1Compatibility` entry. IDs are checked as Docker and containers/image check them. */
const V1CompatibilitySchema = lazySchema(() =>
  z.looseObject({
    id: z.string().regex(/^[a-f0-9]{64}$/, 'expected a 64-hex-digit v1 image ID'),
    parent: z.string().optional(),
    created: z.iso.datetime({ offset: true }).optional(),
    author: z.string().optional(),
    comment: z.string().optional(),
    architecture: z.string().optional(),
    os: z.string().optional(),
    variant: z.string().optional(),
    throwaway: z.boolean().optional(),
    config: V1ConfigSchema.nullish(),
    container_config: z.looseObject({ Cmd: StrSlice }).nullish(),
  }),
);
export type V1Compatibility = z.infer<typeof V1CompatibilitySchema>;

const ManifestSchema = lazySchema(() =>
  z.looseObject({
    schemaVersion: z.literal(1),
    name: z.string().default(''),
    tag: z.string().default(''),
    architecture: z.string().default(''),
    fsLayers: z.array(z.object({ blobSum: BlobSum })).min(1),
    history: z.array(z.object({ v1Compatibility: z.string() })).min(1),
  }),
);

const SignaturesSchema = lazySchema(() =>
  z
    .array(z.looseObject({ protected: z.string(), signature: z.string() }))
    .min(1, 'expected at least one signature (an unsigned manifest has no "signatures" field)'),
);

const Base64Url = lazySchema(() =>
  z.string().regex(/^[A-Za-z0-9_-]*$/, 'expected base64url without padding'),
);
const ProtectedHeaderSchema = lazySchema(() =>
  z.looseObject({
    formatLength: z.number().int().nonnegative(),
    formatTail: Base64Url,
  }),
);

// ---- public types ------------------------------------------------------------------------------

export interface Schema1Manifest {
  name: string;
  tag: string;
  architecture: string;
  /** Top layer first, as in the document (minus consecutive duplicate layers, dropped as Docker does). */
  fsLayers: { blobSum: Digest }[];
  history: { v1Compatibility: string }[];
  signed: boolean;
}

export interface ParsedSchema1 {
  manifest: Schema1Manifest;
  /** The document without its signature block: what the digest covers. */
  payload: Buffer;
  digest: Digest;
}

export interface Schema1Layer {
  blobSum: Digest;
  emptyLayer: boolean;
  v1: V1Compatibility;
}

// ---- parsing -----------------------------------------------------------------------------------

export function parseSchema1(bytes: Buffer): ParsedSchema1 {
  if (bytes.length > MAX_SCHEMA1_BYTES) {
    throw new VerificationError(
      `${WHAT} is ${bytes.length} bytes, more than the ${MAX_SCHEMA1_BYTES}-byte limit`,
    );
  }
  const document = parseJsonObject(bytes, WHAT);
  const signed = 'signatures' in document;
  const payload = signed ? signedPayload(bytes, document.signatures) : bytes;
  // The manifest is read from the payload, not the full document: only the payload is digested.
  const content = signed ? parseJsonObject(payload, `${WHAT} payload`) : document;
  if (signed) assertPayloadMatchesDocument(document, content);
  return { manifest: { ...validateManifest(content), signed }, payload, digest: sha256(payload) };
}

function parseJsonObject(bytes: Buffer | string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString());
  } catch (error) {
    throw new VerificationError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new VerificationError(`${what} is not a JSON object`);
  }
  return json as Record<string, unknown>;
}

/** zod validation with the first failing field named, e.g. `fsLayers[2].blobSum: ...`. */
function check<S extends z.ZodType>(schema: S, value: unknown, field: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const where = joinPath(field, issue?.path ?? []);
  throw new VerificationError(`${WHAT}: ${where ? `${where}: ` : ''}${issue?.message ?? 'invalid'}`);
}

function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    prefix,
  );
}

function fail(field: string, message: string): never {
  throw new VerificationError(`${WHAT}: ${field}: ${message}`);
}

// ---- signatures --------------------------------------------------------------------------------

/**
 * libtrust's "pretty signature" format: each signature's protected header says how to rebuild the
 * payload, bytes[0:formatLength] + formatTail. libtrust silently uses the last signature's values;
 * here every signature must agree, so no two readers can disagree on what was signed.
 */
function signedPayload(bytes: Buffer, signatures: unknown): Buffer {
  const headers = check(SignaturesSchema, signatures, 'signatures').map((s, i) =>
    protectedHeader(s.protected, i),
  );
  const [first] = headers;
  headers.forEach((h, i) => {
    if (h.formatLength !== first?.formatLength || h.formatTail !== first.formatTail) {
      fail(
        `signatures[${i}].protected`,
        `formatLength/formatTail (${h.formatLength}, "${h.formatTail}") disagree with signatures[0] (${first?.formatLength}, "${first?.formatTail}")`,
      );
    }
  });
  if (!first || first.formatLength > bytes.length) {
    fail(
      'signatures[0].protected.formatLength',
      `${first?.formatLength} is beyond the ${bytes.length}-byte document`,
    );
  }
  return Buffer.concat([bytes.subarray(0, first.formatLength), Buffer.from(first.formatTail, 'base64url')]);
}

function protectedHeader(encoded: string, index: number): z.infer<typeof ProtectedHeaderSchema> {
  const field = `signatures[${index}].protected`;
  check(Base64Url, encoded, field);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(encoded, 'base64url').toString());
  } catch (error) {
    fail(field, `not base64url-encoded JSON: ${(error as Error).message}`);
  }
  return check(ProtectedHeaderSchema, json, field);
}

/**
 * A crafted document could sign one payload (formatTail can hold anything) while showing other
 * content around it; refuse any document whose visible content is not exactly its payload.
 */
function assertPayloadMatchesDocument(
  document: Record<string, unknown>,
  payload: Record<string, unknown>,
): void {
  const { signatures: _, ...visible } = document;
  if (canonicalJson(visible) !== canonicalJson(payload)) {
    fail(
      'signatures',
      'the signed payload (formatLength/formatTail) differs from the document it is attached to',
    );
  }
}

// ---- manifest content --------------------------------------------------------------------------

function validateManifest(content: Record<string, unknown>): Omit<Schema1Manifest, 'signed'> {
  // A document that is also a valid schema2/OCI manifest or index could be read two ways.
  for (const key of ['config', 'layers', 'manifests']) {
    if (key in content) fail(key, 'unexpected field in a schema1 manifest (ambiguous document)');
  }
  const m = check(ManifestSchema, content, '');
  if (m.fsLayers.length !== m.history.length) {
    fail('fsLayers', `${m.fsLayers.length} entries but history has ${m.history.length}; they must match`);
  }
  const v1s = m.history.map((h, i) => parseV1Compatibility(h.v1Compatibility, i));
  const keep = layerChain(v1s);
  return {
    name: m.name,
    tag: m.tag,
    architecture: m.architecture,
    fsLayers: m.fsLayers.filter((_, i) => keep[i]).map((l) => ({ blobSum: l.blobSum })),
    history: m.history.filter((_, i) => keep[i]).map((h) => ({ v1Compatibility: h.v1Compatibility })),
  };
}

function parseV1Compatibility(text: string | undefined, index: number): V1Compatibility {
  const field = `history[${index}].v1Compatibility`;
  if (text === undefined) fail(field, 'missing');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail(field, `not valid JSON: ${(error as Error).message}`);
  }
  return check(V1CompatibilitySchema, json, field);
}

/**
 * The v1 IDs must form one parent chain down to a parentless base (entries are top-first). Docker
 * and containers/image drop an entry repeating the ID of the one below it (old pushes did that) and
 * refuse any other repetition; returns which entries to keep.
 */
function layerChain(v1s: V1Compatibility[]): boolean[] {
  const last = v1s.length - 1;
  if (v1s[last]?.parent)
    fail(`history[${last}].v1Compatibility.parent`, 'the base layer must not have a parent');
  const seen = new Map<string, number>();
  v1s.forEach((v1, i) => {
    const earlier = seen.get(v1.id);
    if (earlier !== undefined && earlier !== i - 1) {
      fail(`history[${i}].v1Compatibility.id`, `${v1.id} already appears in history[${earlier}]`);
    }
    seen.set(v1.id, i);
  });
  return v1s.map((v1, i) => {
    const below = v1s[i + 1];
    if (!below) return true;
    if (v1.id === below.id) return false;
    if (v1.parent !== below.id) {
      fail(
        `history[${i}].v1Compatibility.parent`,
        `expected ${below.id} (the id of history[${i + 1}]), got ${v1.parent}`,
      );
    }
    return true;
  });
}

// ---- layers ------------------------------------------------------------------------------------

/** Every layer, base first; `emptyLayer` ones (throwaway) carry no content and are not pulled. */
export function schema1Layers(m: Schema1Manifest): Schema1Layer[] {
  if (m.fsLayers.length !== m.history.length) {
    fail('fsLayers', `${m.fsLayers.length} entries but history has ${m.history.length}; they must match`);
  }
  const topFirst = m.fsLayers.map((layer, i) => {
    const v1 = parseV1Compatibility(m.history[i]?.v1Compatibility, i);
    return { blobSum: layer.blobSum, emptyLayer: v1.throwaway === true, v1 };
  });
  return topFirst.reverse();
}

/** The layers to pull, base first. */
export function schema1NonEmptyLayers(m: Schema1Manifest): Schema1Layer[] {
  return schema1Layers(m).filter((l) => !l.emptyLayer);
}

// ---- conversion --------------------------------------------------------------------------------

/** Image-config keys carried over from the v1 config (OCI ImageConfig, plus Docker's Healthcheck/OnBuild/Shell). */
const IMAGE_CONFIG_KEYS = [
  'User',
  'ExposedPorts',
  'Env',
  'Entrypoint',
  'Cmd',
  'Volumes',
  'WorkingDir',
  'Labels',
  'StopSignal',
  'ArgsEscaped',
  'Healthcheck',
  'OnBuild',
  'Shell',
] as const;

/**
 * The OCI image config for a schema1 image. Schema1 commits to no DiffIDs, so they must come from
 * the caller, computed from the pulled content: one per non-empty layer, base first.
 */
export function schema1ToOciConfig(
  m: Schema1Manifest,
  diffIDs: Digest[],
): { config: Record<string, unknown>; bytes: Buffer } {
  const layers = schema1Layers(m);
  const nonEmpty = layers.filter((l) => !l.emptyLayer).length;
  if (diffIDs.length !== nonEmpty) {
    throw new UsageError(
      `schema1 conversion needs ${nonEmpty} DiffIDs (one per non-empty layer), got ${diffIDs.length}`,
    );
  }
  const top = layers[layers.length - 1]?.v1;
  const architecture = top?.architecture || m.architecture;
  if (!top || !architecture)
    fail('architecture', 'missing from both the manifest and the top v1Compatibility');
  const config = withoutUndefined({
    created: top.created,
    author: top.author,
    architecture,
    os: top.os || 'linux',
    variant: top.variant || undefined,
    config: imageConfig(top.config),
    rootfs: { type: 'layers', diff_ids: diffIDs.map((d, i) => parseDigest(d, `diffIDs[${i}]`)) },
    history: layers.map(historyEntry),
  });
  return { config, bytes: Buffer.from(canonicalJson(config)) };
}

function imageConfig(v1Config: V1Compatibility['config']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of IMAGE_CONFIG_KEYS) {
    const value = v1Config?.[key];
    // Docker writes "" and null for unset fields; an OCI config simply omits them.
    if (value !== undefined && value !== null && value !== '') out[key] = value;
  }
  return out;
}

/** As Docker and containers/image convert it: created_by is container_config.Cmd joined by spaces. */
function historyEntry(layer: Schema1Layer): Record<string, unknown> {
  const cmd = layer.v1.container_config?.Cmd;
  return withoutUndefined({
    created: layer.v1.created,
    created_by: cmd?.length ? cmd.join(' ') : undefined,
    author: layer.v1.author || undefined,
    comment: layer.v1.comment || undefined,
    empty_layer: layer.emptyLayer ? true : undefined,
  });
}

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

/** JSON with object keys sorted at every level: the same value always gives the same bytes. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
