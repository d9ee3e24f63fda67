/**
 * Deterministic platform selection (docs/design.md §3). The stacker seed is why this is so strict: a choice
 * made by map iteration order broke builds at random. Here the same index and the same wanted
 * platform always give the same manifest: candidates are ranked, and among equal ranks the first
 * in index order wins.
 */
import { NotFoundError, UsageError } from '../errors/index.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
};

export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-zA-Z0-9_.-]+$/.test(p))) {
    throw new UsageError(`invalid platform "${text}": expected os/arch[/variant], e.g. linux/arm64`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, ...(variant ? { variant } : {}) });
}

/** Lower-cases, resolves architecture aliases, and makes arm64's implied v8 explicit. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  if (architecture === 'arm64' && (variant === undefined || variant === '8')) variant = 'v8';
  if (architecture === 'arm' && variant && /^\d$/.test(variant)) variant = `v${variant}`;
  return { os, architecture, ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

const NODE_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  s390x: 's390x',
  ppc64: 'ppc64le',
  riscv64: 'riscv64',
};

/** The platform of this machine, as a default for `--platform`. */
export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return normalizePlatform({ os, architecture: NODE_ARCH[process.arch] ?? process.arch });
}

/** arm variants a wanted arm platform can run, best first; a variantless arm entry counts as v7 (containerd's rule). */
const ARM_VARIANTS = ['v8', 'v7', 'v6', 'v5'];

/**
 * How well an offered platform serves the wanted one: 0 = not at all, higher is better.
 * Explicit variants prefer an exact match, then older compatible ones; `arm` without a variant
 * means the best available v7 > v6 > v5.
 */
export function platformScore(offeredRaw: Platform, wantedRaw: Platform): number {
  const offered = normalizePlatform(offeredRaw);
  const wanted = normalizePlatform(wantedRaw);
  if (offered.os !== wanted.os || offered.architecture !== wanted.architecture) return 0;
  if (offered.architecture !== 'arm') {
    if (!wanted.variant) return offered.variant ? 1 : 2;
    if (offered.variant === wanted.variant) return 3;
    return offered.variant ? 0 : 2;
  }
  const offeredRank = ARM_VARIANTS.indexOf(offered.variant ?? 'v7');
  const wantedRank = ARM_VARIANTS.indexOf(wanted.variant ?? 'v7');
  if (offeredRank < 0) return offered.variant === wanted.variant ? ARM_VARIANTS.length + 1 : 0;
  if (offeredRank < wantedRank) return 0; // a newer variant than asked for cannot run
  if (wanted.variant && offered.variant === wanted.variant) return ARM_VARIANTS.length + 1;
  return ARM_VARIANTS.length - offeredRank;
}

export interface PlatformCandidate {
  platform?: Platform | undefined;
}

/**
 * Picks the entry that best serves `wanted`: highest score, first in index order among equals.
 * Throws NotFoundError listing what the index offers when nothing matches.
 */
export function selectPlatform<T extends PlatformCandidate>(
  entries: readonly T[],
  wanted: Platform,
  what: string,
): T {
  let best: T | undefined;
  let bestScore = 0;
  for (const entry of entries) {
    if (!entry.platform) continue;
    const score = platformScore(entry.platform, wanted);
    if (score > bestScore) {
      best = entry;
      bestScore = score;
    }
  }
  if (best) return best;
  const offered = entries
    .filter((e) => e.platform && e.platform.os !== 'unknown')
    .map((e) => formatPlatform(normalizePlatform(e.platform!)));
  throw new NotFoundError(
    `${what}: no manifest for platform ${formatPlatform(wanted)}; the index offers ${offered.length ? offered.join(', ') : 'no platforms'}`,
  );
}

/** Docker's build attestations sit in indexes as "unknown/unknown" manifests: never a platform choice. */
export function isAttestation(descriptor: {
  annotations?: Record<string, string> | undefined;
  platform?: { os: string; architecture: string } | undefined;
}): boolean {
  return (
    descriptor.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (descriptor.platform?.os === 'unknown' && descriptor.platform.architecture === 'unknown')
  );
}
