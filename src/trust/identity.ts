/**
 * signedIdentity (containers-policy.json(5)): does the identity a signature claims
 * (`critical.identity.docker-reference`) fit the image being pulled? Pure; the rules are
 * containers/image's signature/policy_reference_match.go.
 */
import { parseRegistryReference } from '../reference/index.js';
import type { SignedIdentity } from './policy.js';

/** A Docker reference as the matchers see it: the normalised name and what was written after it. */
export interface DockerIdentity {
  /** host/repository, normalised (`docker.io/library/busybox`). */
  name: string;
  tag?: string | undefined;
  digest?: string | undefined;
}

/** Parses a reference as written, without inventing a `latest` tag (identity matching needs to know). */
export function parseIdentity(text: string): DockerIdentity | undefined {
  try {
    const ref = parseRegistryReference(text);
    const beforeDigest = text.split('@')[0]!;
    const explicitTag = beforeDigest.lastIndexOf(':') > beforeDigest.lastIndexOf('/');
    return {
      name: `${ref.registry}/${ref.repository}`,
      ...(explicitTag ? { tag: ref.tag } : {}),
      ...(ref.digest ? { digest: ref.digest } : {}),
    };
  } catch {
    return undefined;
  }
}

export function formatIdentity(id: DockerIdentity): string {
  return `${id.name}${id.tag ? `:${id.tag}` : ''}${id.digest ? `@${id.digest}` : ''}`;
}

export const DEFAULT_SIGNED_IDENTITY: SignedIdentity = { type: 'matchRepoDigestOrExact' };

/** Whether `signed` (the signature's claim) is acceptable for `image` under `rule`. */
export function identityMatches(
  rule: SignedIdentity,
  image: DockerIdentity,
  signed: DockerIdentity,
): boolean {
  switch (rule.type) {
    case 'matchExact':
      return (
        (image.tag !== undefined || image.digest !== undefined) &&
        formatIdentity(image) === formatIdentity(signed)
      );
    case 'matchRepoDigestOrExact':
      return matchRepoDigestOrExact(image, signed);
    case 'matchRepository':
      return image.name === signed.name;
    case 'exactReference': {
      const wanted = parseIdentity(rule.dockerReference);
      return (
        wanted !== undefined &&
        (wanted.tag !== undefined || wanted.digest !== undefined) &&
        formatIdentity(wanted) === formatIdentity(signed)
      );
    }
    case 'exactRepository':
      return parseIdentity(rule.dockerRepository)?.name === signed.name;
    case 'remapIdentity':
      return matchRepoDigestOrExact(remap(image, rule.prefix, rule.signedPrefix), signed);
  }
}

/** A digest reference needs only the repository to match; a tagged one, the exact reference. */
function matchRepoDigestOrExact(image: DockerIdentity, signed: DockerIdentity): boolean {
  if (image.digest !== undefined) return image.name === signed.name;
  if (image.tag !== undefined) return formatIdentity(image) === formatIdentity(signed);
  return false;
}

/** `prefix` is a host[:port], a namespace or a repository, matched on `/` boundaries. */
function remap(image: DockerIdentity, prefix: string, signedPrefix: string): DockerIdentity {
  if (image.name !== prefix && !image.name.startsWith(`${prefix}/`)) return image;
  const name = `${signedPrefix}${image.name.slice(prefix.length)}`;
  return parseIdentity(name) ? { ...image, name: parseIdentity(name)!.name } : image;
}
