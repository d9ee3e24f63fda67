/**
 * Every failure skiff reports is a SkiffError carrying the exit code of docs/design.md §9, so the CLI can
 * print one line and exit with a code a script can branch on.
 */
import { formatLimit, shortDigest } from '../util/present.js';

export const ExitCode = {
  ok: 0,
  usage: 1,
  notFound: 2,
  convertOnly: 3,
  verification: 4,
  network: 5,
  rejectedByPolicy: 6,
  storeWrite: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A short machine-readable label for each family of errors, used in `--json` output. */
export type ErrorKind =
  | 'usage'
  | 'internal'
  | 'not-found'
  | 'unauthorized'
  | 'blocked'
  | 'convert-only'
  | 'verification'
  | 'network'
  | 'certificate'
  | 'rejected-by-policy'
  | 'store-busy'
  | 'store-write';

export interface ErrorContext {
  /** The image reference being worked on, as the user wrote it. */
  image?: string;
  /** The blob or layer digest concerned. */
  digest?: string;
  /** A file path (local file, or a path inside a layer). */
  path?: string;
}

export class SkiffError extends Error {
  readonly exitCode: ExitCode;
  readonly kind: ErrorKind;
  readonly context: ErrorContext;

  constructor(
    kind: ErrorKind,
    exitCode: ExitCode,
    message: string,
    context: ErrorContext = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SkiffError';
    this.kind = kind;
    this.exitCode = exitCode;
    this.context = context;
  }

  /** Returns the same error with more context; fields already set win (the innermost knows best). */
  withContext(context: ErrorContext): this {
    Object.assign(this.context, { ...context, ...this.context });
    return this;
  }

  /** The one line printed on stderr: image, layer digest and cause. */
  oneLine(): string {
    const where = [this.context.image, this.context.digest && shortDigest(this.context.digest)]
      .filter(Boolean)
      .join(' ');
    const text = this.message.replace(/\s*\n\s*/g, '; ');
    return where && !text.includes(where) ? `${where}: ${text}` : text;
  }

  toJSON(): Record<string, unknown> {
    return { error: { kind: this.kind, exitCode: this.exitCode, message: this.message, ...this.context } };
  }
}

export class UsageError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('usage', ExitCode.usage, message, context, cause);
  }
}

export class NotFoundError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('not-found', ExitCode.notFound, message, context, cause);
  }
}

export class UnauthorizedError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('unauthorized', ExitCode.notFound, message, context, cause);
  }
}

/** registries.conf blocks the registry: refused before any request, like a refused login (exit 2). */
export class RegistryBlockedError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}) {
    super('blocked', ExitCode.notFound, message, context);
  }
}

export class ConvertOnlyError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}) {
    super('convert-only', ExitCode.convertOnly, message, context);
  }
}

export class VerificationError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('verification', ExitCode.verification, message, context, cause);
  }
}

export class NetworkError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('network', ExitCode.network, message, context, cause);
  }
}

/**
 * A TLS handshake failed a certificate check (unknown CA, wrong name, expired, client certificate
 * required or refused): exit 5 like other network failures, but never retried, and said with the
 * host, the check and where skiff looked for CAs (docs/network.md "Certificates").
 */
export class CertificateError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('certificate', ExitCode.network, message, context, cause);
  }
}

/**
 * A host sent no new byte for the stall timeout (`--stall-timeout`), across resumes and retries:
 * a network failure, said in words that name the host, the blob and the image.
 */
export class StallError extends NetworkError {
  constructor(
    readonly host: string,
    readonly timeoutMs: number,
    context: ErrorContext = {},
    cause?: unknown,
  ) {
    super(`no data from ${host} for ${formatLimit(timeoutMs)}`, context, cause);
  }

  override oneLine(): string {
    const { image, digest } = this.context;
    const what = [digest && `blob ${shortDigest(digest)}`, image && (digest ? `of ${image}` : image)]
      .filter(Boolean)
      .join(' ');
    return what ? `${this.message} while fetching ${what}` : this.message;
  }
}

/**
 * The trust policy (containers-policy.json) refuses the image (exit 6): no requirement-satisfying
 * signature, or a `reject` requirement. Raised before any layer is fetched.
 */
export class TrustPolicyError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}) {
    super('rejected-by-policy', ExitCode.rejectedByPolicy, message, context);
  }
}

export class StoreBusyError extends SkiffError {
  constructor(message: string, context: ErrorContext = {}) {
    super('store-busy', ExitCode.usage, message, context);
  }
}

/** Why a file system refuses writes: no space, no quota, or mounted read-only. */
const WRITE_REFUSED = {
  ENOSPC: 'no space left on',
  EDQUOT: 'disk quota exceeded on',
  EROFS: 'read-only file system on',
} as const;
export type WriteRefusedErrno = keyof typeof WRITE_REFUSED;

/**
 * The store cannot be written (exit 7): the file system is full, over quota or read-only. Not
 * the input's fault, so never a verification failure, and said as the user can act on it.
 */
export class StoreWriteError extends SkiffError {
  constructor(
    readonly errno: WriteRefusedErrno,
    device: string,
    storeRoot: string,
    context: ErrorContext = {},
    cause?: unknown,
  ) {
    const message = `${WRITE_REFUSED[errno]} ${device} while writing the store at ${storeRoot}`;
    super('store-write', ExitCode.storeWrite, message, context, cause);
  }

  /** The cause first (it is what the user acts on), then what was being written. */
  override oneLine(): string {
    const where = [this.context.image, this.context.digest && `layer ${shortDigest(this.context.digest)}`]
      .filter(Boolean)
      .join(', ');
    return where ? `${this.message} (${where})` : this.message;
  }
}

/**
 * The errno of a write the file system refused for want of space or writability, looking through
 * wrapped causes (a stream pipeline, a SkiffError around the original); undefined for anything else.
 */
export function writeRefusedErrno(error: unknown): WriteRefusedErrno | undefined {
  for (let e = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code && code in WRITE_REFUSED) return code as WriteRefusedErrno;
  }
  return undefined;
}

/** Wraps anything thrown into a SkiffError, keeping SkiffErrors as they are. */
export function asSkiffError(error: unknown, context: ErrorContext = {}): SkiffError {
  if (error instanceof SkiffError) return error.withContext(context);
  const message = error instanceof Error ? error.message : String(error);
  const nodeCode = (error as NodeJS.ErrnoException | undefined)?.code;
  if (nodeCode === 'ENOSPC')
    return new SkiffError('internal', ExitCode.usage, `disk full: ${message}`, context, error);
  return new SkiffError('internal', ExitCode.usage, message, context, error);
}
