/**
 * The simple-signing payload both GPG ("atomic container signature") and cosign ("cosign
 * container image signature") signatures sign: validated strictly, as containers/image does, since
 * an unknown critical field is one the signer meant and we would ignore.
 */
import { z } from 'zod';
import type { SignatureClaims } from './decide.js';

export const ATOMIC_TYPE = 'atomic container signature';
export const COSIGN_TYPE = 'cosign container image signature';

const payloadSchema = (type: string) =>
  z.object({
    critical: z.strictObject({
      type: z.literal(type),
      image: z.strictObject({ 'docker-manifest-digest': z.string().min(1) }),
      identity: z.strictObject({ 'docker-reference': z.string().min(1) }),
    }),
    optional: z.record(z.string(), z.unknown()).nullish(),
  });

const SCHEMAS = { [ATOMIC_TYPE]: payloadSchema(ATOMIC_TYPE), [COSIGN_TYPE]: payloadSchema(COSIGN_TYPE) };

/** The claims of a verified payload, or why it is not one. */
export function parsePayload(
  bytes: Uint8Array,
  type: typeof ATOMIC_TYPE | typeof COSIGN_TYPE,
): { claims: SignatureClaims } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { problem: 'the payload is not JSON' };
  }
  const parsed = SCHEMAS[type].safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { problem: `the payload is not a ${type}: ${issue.path.join('.')}: ${issue.message}` };
  }
  const { critical } = parsed.data;
  return {
    claims: {
      dockerManifestDigest: critical.image['docker-manifest-digest'],
      dockerReference: critical.identity['docker-reference'],
    },
  };
}
