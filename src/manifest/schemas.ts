/**
 * zod schemas for the registry documents skiff reads (docs/design.md §3): validated once, at the
 * boundary. Each is built when first used (util/lazy-schema.ts), not when a command loads.
 */
import { z } from 'zod';
import { type Digest, isDigest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { lazySchema } from '../util/lazy-schema.js';

export const DigestSchema = lazySchema(() =>
  z
    .string()
    .refine(isDigest, 'not a sha256 digest')
    .transform((d) => d as Digest),
);

const Annotations = lazySchema(() => z.record(z.string(), z.string()));

export const PlatformSchema = lazySchema(() =>
  z.object({
    architecture: z.string().min(1),
    os: z.string().min(1),
    variant: z.string().optional(),
    'os.version': z.string().optional(),
    'os.features': z.array(z.string()).optional(),
  }),
);

export const DescriptorSchema = lazySchema(() =>
  z.object({
    mediaType: z.string().min(1),
    digest: DigestSchema,
    size: z.number().int().nonnegative(),
    urls: z.array(z.string()).optional(),
    annotations: Annotations.optional(),
    platform: PlatformSchema.optional(),
    artifactType: z.string().optional(),
  }),
);
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const IndexSchema = lazySchema(() =>
  z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    manifests: z.array(DescriptorSchema),
    annotations: Annotations.optional(),
  }),
);

export const ImageManifestSchema = lazySchema(() =>
  z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    config: DescriptorSchema,
    layers: z.array(DescriptorSchema),
    annotations: Annotations.optional(),
    subject: DescriptorSchema.optional(),
  }),
);

const HistorySchema = lazySchema(() =>
  z.object({
    created: z.string().optional(),
    created_by: z.string().optional(),
    author: z.string().optional(),
    comment: z.string().optional(),
    empty_layer: z.boolean().optional(),
  }),
);

/** The image config: only what skiff relies on is checked strictly; the rest passes through untouched. */
export const ImageConfigSchema = lazySchema(() =>
  z.looseObject({
    architecture: z.string().optional(),
    os: z.string().optional(),
    variant: z.string().optional(),
    created: z.string().optional(),
    config: z.looseObject({}).nullish(),
    rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(DigestSchema) }),
    history: z.array(HistorySchema).optional(),
  }),
);
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

/** Parses JSON and validates it, turning the first zod issue into a one-line error naming the field. */
export function parseDocument<S extends z.ZodType>(
  schema: S,
  bytes: Buffer | string,
  what: string,
): z.infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString());
  } catch (error) {
    throw new VerificationError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new VerificationError(`${what}: ${describeIssue(result.error.issues[0])}`);
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid document';
  const field = issue.path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    '',
  );
  return field ? `field ${field}: ${issue.message}` : issue.message;
}
