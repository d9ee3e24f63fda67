/**
 * The two layer annotations ocicrypt writes, parsed and validated. Facts checked against
 * containers/ocicrypt and against layers written by Debian's skopeo 1.9.3:
 *
 * - `org.opencontainers.image.enc.keys.jwe`: comma-separated base64 (standard, padded) JWEs in JSON
 *   serialization. go-jose writes the flattened form for one recipient (alg in the protected header)
 *   and the general form for several (alg and epk per recipient). RSA keys get `RSA-OAEP`, EC keys
 *   `ECDH-ES+A256KW`; content encryption is `A256GCM`. The plaintext is the "private options" JSON.
 * - `org.opencontainers.image.enc.pubopts`: base64 JSON `{cipher, hmac, cipheroptions}`.
 *
 * Everything here comes from an untrusted manifest, so every field is validated before use and no
 * error message quotes a value (the private options hold the layer key).
 */
import { z } from 'zod';
import { VerificationError } from '../../errors/index.js';

export const ENC_KEYS_JWE = 'org.opencontainers.image.enc.keys.jwe';
export const ENC_PUBOPTS = 'org.opencontainers.image.enc.pubopts';
/** Every key-wrapping scheme ocicrypt knows annotates `org.opencontainers.image.enc.keys.<scheme>`. */
const ENC_KEYS_PREFIX = 'org.opencontainers.image.enc.keys.';

/** Standard padded base64, as Go's encoding/json writes []byte; decoded to bytes. */
const bytes = z.base64().transform((value) => Buffer.from(value, 'base64'));
/** Go writes a nil map or slice as null. */
const byteMap = z
  .record(z.string(), bytes)
  .nullish()
  .transform((value) => value ?? {});

const HeaderSchema = z.looseObject({
  alg: z.string().optional(),
  enc: z.string().optional(),
  epk: z.looseObject({ kty: z.string().optional(), crv: z.string().optional() }).optional(),
});
type Header = z.infer<typeof HeaderSchema>;

const RecipientSchema = z.looseObject({
  header: HeaderSchema.optional(),
  encrypted_key: z.string().optional(),
});

/** A JWE in JSON serialization, general or flattened; jose checks the cryptographic members. */
const JweSchema = z.looseObject({
  protected: z.string().optional(),
  unprotected: HeaderSchema.optional(),
  header: HeaderSchema.optional(),
  encrypted_key: z.string().optional(),
  recipients: z.array(RecipientSchema).min(1).optional(),
  iv: z.string().optional(),
  ciphertext: z.string(),
  tag: z.string().optional(),
  aad: z.string().optional(),
});

const PublicOptionsSchema = z.looseObject({
  cipher: z.string(),
  hmac: bytes.nullish(),
  cipheroptions: byteMap,
});
export type PublicOptions = z.infer<typeof PublicOptionsSchema>;

const PrivateOptionsSchema = z.looseObject({
  symkey: bytes,
  digest: z.string().nullish(),
  cipheroptions: byteMap,
});
export type PrivateOptions = z.infer<typeof PrivateOptionsSchema>;

export interface Recipient {
  protocol: 'jwe';
  /** The JWE key-management algorithm, e.g. `RSA-OAEP` or `ECDH-ES+A256KW`. */
  algorithm: string;
  keyType: 'RSA' | 'EC' | 'OKP' | 'unknown';
  curve?: string;
}

export interface EncryptionInfo {
  cipher: string;
  recipients: Recipient[];
  /** Key-wrapping schemes present that skiff cannot use (pgp, pkcs7, pkcs11, provider.*). */
  unsupportedSchemes?: string[];
}

/** A general-serialization JWE (what jose's generalDecrypt takes) and who it is addressed to. */
export interface ParsedJwe {
  jwe: {
    protected?: string;
    unprotected?: Record<string, unknown>;
    recipients: { header?: Record<string, unknown>; encrypted_key?: string }[];
    iv?: string;
    ciphertext: string;
    tag?: string;
    aad?: string;
  };
  recipients: Recipient[];
}

/** Parses the keys annotation: one ParsedJwe per comma-separated entry. */
export function parseJweAnnotation(value: string): ParsedJwe[] {
  return value.split(',').map((entry, index) => {
    const what = `${ENC_KEYS_JWE} entry ${index + 1}`;
    const json = decodeBase64Json(entry, what);
    return toGeneral(validate(JweSchema, json, what), what);
  });
}

export function parsePublicOptions(value: string): PublicOptions {
  return validate(PublicOptionsSchema, decodeBase64Json(value, ENC_PUBOPTS), ENC_PUBOPTS);
}

/** Parses the JWE plaintext; it carries the layer key, so nothing of it may reach a message. */
export function parsePrivateOptions(plaintext: Uint8Array): PrivateOptions {
  const what = 'the layer key options inside the JWE';
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(plaintext).toString('utf8'));
  } catch {
    throw new VerificationError(`${what} are not valid JSON`);
  }
  return validate(PrivateOptionsSchema, json, what);
}

/** What `skiff inspect` shows for an encrypted layer; undefined when the layer is not encrypted. */
export function readEncryptionInfo(
  annotations: Record<string, string> | undefined,
): EncryptionInfo | undefined {
  if (!annotations) return undefined;
  const schemes = keySchemes(annotations);
  const pubopts = annotations[ENC_PUBOPTS];
  if (schemes.length === 0 && pubopts === undefined) return undefined;
  const jwe = annotations[ENC_KEYS_JWE];
  const info: EncryptionInfo = {
    cipher: pubopts === undefined ? 'unknown' : parsePublicOptions(pubopts).cipher,
    recipients: jwe ? parseJweAnnotation(jwe).flatMap((parsed) => parsed.recipients) : [],
  };
  const unsupported = schemes.filter((scheme) => scheme !== 'jwe');
  if (unsupported.length > 0) info.unsupportedSchemes = unsupported;
  return info;
}

/** The key-wrapping schemes annotated on a layer, sorted so output never depends on map order. */
export function keySchemes(annotations: Record<string, string>): string[] {
  return Object.keys(annotations)
    .filter((key) => key.startsWith(ENC_KEYS_PREFIX) && annotations[key] !== '')
    .map((key) => key.slice(ENC_KEYS_PREFIX.length))
    .sort();
}

/** `RSA-OAEP/RSA, ECDH-ES+A256KW/EC P-256`: names recipients without revealing anything secret. */
export function describeRecipients(recipients: Recipient[]): string {
  if (recipients.length === 0) return 'none';
  return recipients.map((r) => `${r.algorithm}/${r.keyType}${r.curve ? ` ${r.curve}` : ''}`).join(', ');
}

function decodeBase64Json(value: string, what: string): unknown {
  const decoded = bytes.safeParse(value.trim());
  if (!decoded.success) throw new VerificationError(`${what} is not valid base64`);
  try {
    return JSON.parse(decoded.data.toString('utf8'));
  } catch {
    throw new VerificationError(`${what} is not valid JSON`);
  }
}

function validate<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // Name the field and the kind of problem only: zod messages can echo input, and input may be secret.
  const issue = result.error.issues[0];
  const field = issue?.path.length ? issue.path.join('.') : '(document)';
  throw new VerificationError(`${what} is malformed: field ${field} (${issue?.code ?? 'invalid'})`);
}

/** Normalises flattened serialization to general, so one decryption path serves both. */
function toGeneral(jwe: z.infer<typeof JweSchema>, what: string): ParsedJwe {
  const { recipients, header, encrypted_key, ...shared } = jwe;
  // go-jose also writes a top-level encrypted_key next to `recipients`; in general form it is ignored.
  const list = recipients ?? [{ header, encrypted_key }];
  const protectedHeader = decodeProtected(jwe.protected, what);
  return {
    jwe: { ...shared, recipients: list },
    recipients: list.map((r) => describeRecipient({ ...protectedHeader, ...jwe.unprotected, ...r.header })),
  };
}

function decodeProtected(encoded: string | undefined, what: string): Header {
  if (encoded === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    throw new VerificationError(`${what}: the JWE protected header is not valid JSON`);
  }
  return validate(HeaderSchema, json, `${what} protected header`);
}

function describeRecipient(header: Header): Recipient {
  const algorithm = header.alg ?? 'unknown';
  const recipient: Recipient = { protocol: 'jwe', algorithm, keyType: keyTypeOf(algorithm, header) };
  if (header.epk?.crv) recipient.curve = header.epk.crv;
  return recipient;
}

function keyTypeOf(algorithm: string, header: Header): Recipient['keyType'] {
  if (algorithm.startsWith('RSA')) return 'RSA';
  if (!algorithm.startsWith('ECDH-ES')) return 'unknown';
  return header.epk?.kty === 'OKP' ? 'OKP' : 'EC';
}
