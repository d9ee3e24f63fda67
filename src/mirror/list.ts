/**
 * `skiff mirror --file LIST.yaml`: the list of images to mirror, validated with zod, and its
 * expansion into one job per source image (tags, digests, or every tag of a repository).
 *
 *   images:
 *     - source: docker://registry.example/library/alpine
 *       destination: docker://mirror.example:5000/library/alpine
 *       tags: ["3.19", "3.20", "sha256:..."]      # or all-tags: true, or a tag in the source
 *       all: true                                # whole index (default: --all of the command)
 *     - source: docker://quay.io/org/tool:1.2
 *       destination: docker://mirror.example:5000/   # trailing "/": the source's repository path
 *     - source: oci:./layouts/app:v1
 *       destination: docker-archive:./app.tar
 *       platform: linux/arm64
 *
 * A destination without a tag takes the source's tag (or digest); one naming a tag, and the
 * single-image transports dir: and docker-archive:, accept a single image only. The same document
 * may be written as JSON (a YAML parser reads both); docs/mirror-list.schema.json describes it.
 */
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { isDigest } from '../digest/index.js';
import { asSkiffError, type SkiffError, UsageError } from '../errors/index.js';
import { IndexSchema, parseDocument } from '../manifest/index.js';
import { formatReference, type ImageReference, parseReference, parseStoredName } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { listTags } from '../registry/push.js';
import { REF_NAME_ANNOTATION } from '../transport/oci-layout.js';
import { shardKey } from './shard.js';

const TAG_OR_DIGEST = /^(?:[\w][\w.-]{0,127}|sha256:[a-f0-9]{64})$/;

const ItemSchema = z
  .strictObject({
    source: z
      .string()
      .min(1)
      .describe('image to copy: docker://HOST/NAME[:TAG][@DIGEST], oci:DIR[:TAG], dir:DIR'),
    destination: z
      .string()
      .min(1)
      .describe(
        'where to copy it; without a tag it takes the source\'s, a trailing "/" appends the source\'s repository path',
      ),
    tags: z
      .array(z.string().regex(TAG_OR_DIGEST, 'expected a tag or a sha256: digest'))
      .min(1)
      .optional()
      .describe('tags or sha256: digests of the source repository to copy (the source names none)'),
    'all-tags': z.boolean().optional().describe('copy every tag of the source repository'),
    all: z.boolean().optional().describe('copy the whole index, every platform (default: the --all flag)'),
    platform: z.string().min(1).optional().describe('os/arch[/variant] to copy from an index'),
  })
  .refine((item) => !(item.tags && item['all-tags']), { message: 'give tags or all-tags, not both' })
  .refine((item) => !(item.all && item.platform), { message: 'give all or platform, not both' });

const ListSchema = z
  .strictObject({
    $schema: z.string().optional().describe('the JSON Schema of this file, for editors'),
    images: z.array(ItemSchema).min(1, 'the list names no image').describe('the images to mirror, in order'),
  })
  .describe('skiff mirror --file: the images to mirror (YAML or JSON)');

/**
 * The list format as a JSON Schema (docs/mirror-list.schema.json is this, written by
 * scripts/mirror-list-schema.mjs): zod's rendering, plus the two either-or rules its refinements
 * state, which zod cannot render.
 */
export function mirrorListJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ListSchema, { io: 'input' }) as unknown as Record<string, unknown> & {
    properties: { images: { items: Record<string, unknown> } };
  };
  const either = (flag: string, other: string) => ({
    not: { required: [flag, other], properties: { [flag]: { const: true } } },
  });
  schema.properties.images.items.allOf = [either('all-tags', 'tags'), either('all', 'platform')];
  return { $schema: schema.$schema, title: 'skiff mirror list', ...schema };
}

export type ListItem = z.infer<typeof ItemSchema>;

/** One image to mirror: what copyImage gets, or why the list entry could not be expanded. */
export interface MirrorJob {
  source: string;
  destination: string;
  all?: boolean | undefined;
  platform?: string | undefined;
  error?: SkiffError | undefined;
}

export async function readMirrorList(file: string): Promise<ListItem[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`, { path: file });
  }
  return parseMirrorList(text, file);
}

/** The YAML parser loads only when a list is read: a single-image mirror should not pay for it. */
function parseYaml(text: string): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof Yaml).parse(text);
}

export function parseMirrorList(text: string, file = 'list'): ListItem[] {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new UsageError(`${file}: not valid YAML: ${(error as Error).message}`, { path: file });
  }
  const parsed = ListSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = (issue?.path ?? [])
      .map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`))
      .join('');
    throw new UsageError(
      `${file}: ${where.replace(/^\./, '') || 'document'}: ${issue?.message ?? 'invalid'}`,
      {
        path: file,
      },
    );
  }
  return parsed.data.images;
}

export interface ExpandOptions {
  client: RegistryClient;
  /** The command's --all / --platform, for items that say nothing. */
  all?: boolean | undefined;
  platform?: string | undefined;
}

/** Expands every item, in list order; an item that cannot be expanded becomes one failed job. */
export async function expandList(items: ListItem[], options: ExpandOptions): Promise<MirrorJob[]> {
  const jobs: MirrorJob[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const all = item.all ?? (item.platform ? false : options.all);
    const platform = item.platform ?? (item.all ? undefined : options.platform);
    try {
      for (const job of await expandItem(item, options.client)) {
        const key = shardKey(job.source, job.destination);
        if (seen.has(key)) continue;
        seen.add(key);
        jobs.push({ ...job, all, platform });
      }
    } catch (error) {
      jobs.push({
        source: item.source,
        destination: item.destination,
        all,
        platform,
        error: asSkiffError(error),
      });
    }
  }
  return jobs;
}

async function expandItem(item: ListItem, client: RegistryClient): Promise<MirrorJob[]> {
  const source = parseReference(item.source);
  const listed = item.tags ?? (item['all-tags'] ? await sourceTags(source, client) : undefined);
  if (listed && hasExplicitVersion(item.source, source))
    throw new UsageError(`${item.source}: names a tag or digest already; drop it to use tags/all-tags`);
  const sources = listed ? listed.map((version) => withVersion(source, version)) : [source];
  return sources.map((s) => ({
    source: referenceText(s),
    destination: destinationFor(item.destination, s, sources.length),
  }));
}

/**
 * `skiff list-tags`: every tag of a registry repository (all pages) or every ref name of an OCI
 * layout, sorted. The text names a repository, so a tag or digest in it is refused.
 */
export async function listSourceTags(
  text: string,
  client: RegistryClient,
): Promise<{ repository: string; tags: string[] }> {
  const source = parseReference(text);
  if (hasExplicitVersion(text, source))
    throw new UsageError(`${text}: names a tag or digest; list-tags takes a repository`, { image: text });
  const repository =
    source.transport === 'docker'
      ? `docker://${source.registry}/${source.repository}`
      : formatReference(source);
  return { repository, tags: await sourceTags(source, client) };
}

/** Every tag of a repository (registry) or every ref name of an OCI layout, sorted. */
async function sourceTags(source: ImageReference, client: RegistryClient): Promise<string[]> {
  if (source.transport === 'docker') return listTags(client, source);
  if (source.transport === 'oci') {
    const file = path.join(source.dir, 'index.json');
    const index = parseDocument(IndexSchema, await fsp.readFile(file), file);
    const names = index.manifests
      .map((m) => m.annotations?.[REF_NAME_ANNOTATION])
      .filter((n) => n !== undefined);
    return [...new Set(names)].sort();
  }
  throw new UsageError(
    `${source.transport}: sources have no tags (only docker:// repositories and oci: layouts do)`,
  );
}

function withVersion(source: ImageReference, version: string): ImageReference {
  if (source.transport === 'docker') {
    const { tag: _tag, digest: _digest, ...rest } = source;
    return isDigest(version) ? { ...rest, digest: version } : { ...rest, tag: version };
  }
  if (source.transport === 'oci' && !isDigest(version)) return { ...source, tag: version };
  throw new UsageError(`tags: ${source.transport}: sources cannot select ${version}`);
}

/** The destination of one expanded source (see the module comment for the rules). */
function destinationFor(text: string, source: ImageReference, count: number): string {
  let written = text;
  if (text.endsWith('/')) {
    if (source.transport !== 'docker')
      throw new UsageError(`${text}: a "/" destination needs a docker:// source`);
    written = `${text}${source.repository}`;
  }
  const destination = parseReference(written);
  const single = destination.transport === 'dir' || destination.transport === 'docker-archive';
  if ((single || hasExplicitVersion(written, destination)) && count > 1)
    throw new UsageError(`${text}: holds one image, but the entry expands to ${count}`);
  if (single || hasExplicitVersion(written, destination)) return referenceText(destination);
  const tag = source.transport === 'docker' || source.transport === 'oci' ? source.tag : undefined;
  const digest = source.transport === 'docker' && !tag ? source.digest : undefined;
  if (destination.transport === 'docker') {
    const { tag: _tag, digest: _digest, ...rest } = destination;
    return referenceText({ ...rest, ...(tag ? { tag } : digest ? { digest } : { tag: 'latest' }) });
  }
  // store:NAME records each image under NAME:TAG, as a registry repository would hold it.
  if (destination.transport === 'store' && tag)
    return referenceText({ ...destination, image: `${destination.image}:${tag}` });
  return referenceText(tag && destination.transport === 'oci' ? { ...destination, tag } : destination);
}

/** parseReference fills in `latest`; whether the user wrote a tag (or digest) is in the text. */
function hasExplicitVersion(text: string, ref: ImageReference): boolean {
  if (ref.transport === 'oci') return ref.tag !== undefined;
  if (ref.transport === 'store') return hasExplicitVersion(ref.image, parseStoredName(ref.image));
  if (ref.transport !== 'docker') return false;
  const name = text.trim().replace(/^docker:\/\//, '');
  return name.includes('@') || name.slice(name.lastIndexOf('/') + 1).includes(':');
}

/** The canonical text of a reference, with its transport. */
export function referenceText(ref: ImageReference): string {
  return ref.transport === 'docker' ? `docker://${formatReference(ref)}` : formatReference(ref);
}
