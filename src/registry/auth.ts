/**
 * Registry authentication driven by WWW-Authenticate (docs/design.md §2): Bearer tokens per repository scope,
 * or Basic. Credentials are looked up lazily, only when a registry asks, and never leave this
 * module except inside an Authorization header to the host they belong to.
 *
 * Credentials are bound to the registry the user named: only a challenge answered by that
 * registry's own origin is ever answered (and remembered), and a token realm receives them only
 * because that challenge named it. A 401 from anywhere else, such as the storage host a blob GET
 * was redirected to, is refused without contacting the realm it names (containers/image does not
 * answer such challenges either): its realm was chosen by a host the user never named.
 */
import { z } from 'zod';
import { UnauthorizedError } from '../errors/index.js';
import { type Challenge, parseWwwAuthenticate } from './challenge.js';
import { type Credential, type CredentialOptions, findCredentials } from './credentials.js';
import { errorDetail, type HttpClient } from './http.js';

export interface Scope {
  repository: string;
  actions: Array<'pull' | 'push'>;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

const TokenResponseSchema = z.object({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
});

/** Tokens are refreshed a little before the registry says they expire. */
const EXPIRY_MARGIN_MS = 10_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;

/** A registry as the user named it (`host`, for credentials) and the origin its API answers on. */
export interface RegistryOrigin {
  host: string;
  origin: string;
}

/** Why skiff will not answer a challenge from where a registry redirected it. */
export function foreignChallengeMessage(registry: string, url: URL): string {
  return `${url.host}, where registry ${registry} redirected the request, asks for credentials; skiff sends the credentials of ${registry} only to ${registry} and the token server it names`;
}

export function scopeString(scope: Scope): string {
  return `repository:${scope.repository}:${[...new Set(scope.actions)].sort().join(',')}`;
}

export class Authenticator {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly credentials = new Map<
    string,
    Promise<{ credential: Credential; source: string } | undefined>
  >();

  constructor(
    private readonly http: HttpClient,
    private readonly credentialOptions: CredentialOptions = {},
  ) {}

  /** The Authorization header to send proactively, once the registry has challenged us before. */
  async headerFor(registry: RegistryOrigin, scopes: Scope[]): Promise<string | undefined> {
    const challenge = this.challenges.get(registry.origin);
    if (!challenge) return undefined;
    return this.authorize(registry.host, scopes, challenge);
  }

  /**
   * Handles a 401 answered by `answeredBy` (the URL after redirects): remembers the challenge and
   * returns the header to retry with, if the registry itself sent it; refuses (exit 2) otherwise.
   */
  async answerChallenge(
    registry: RegistryOrigin,
    scopes: Scope[],
    answeredBy: URL,
    wwwAuthenticate: string | string[] | undefined,
  ): Promise<string> {
    if (answeredBy.origin !== registry.origin)
      throw new UnauthorizedError(foreignChallengeMessage(registry.host, answeredBy));
    const host = registry.host;
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const challenge =
      challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge)
      throw new UnauthorizedError(`registry ${host} refused access without an authentication challenge`);
    const previous = this.challenges.get(registry.origin);
    this.challenges.set(registry.origin, challenge);
    // A 401 with a token in hand means the token no longer works: forget it and get a new one.
    if (previous) this.tokens.delete(tokenKey(host, scopes));
    return this.authorize(host, scopes, challenge);
  }

  private async authorize(host: string, scopes: Scope[], challenge: Challenge): Promise<string> {
    if (challenge.scheme === 'basic') {
      const found = await this.lookup(host, scopes[0]?.repository);
      if (found?.credential.kind !== 'basic') {
        throw new UnauthorizedError(`registry ${host} requires credentials (Basic auth) and none were found`);
      }
      const { username, password } = found.credential;
      return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    const key = tokenKey(host, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.header;
    const token = await this.fetchToken(host, scopes, challenge);
    this.tokens.set(key, token);
    return token.header;
  }

  private async fetchToken(host: string, scopes: Scope[], challenge: Challenge): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new UnauthorizedError(`registry ${host} sent a Bearer challenge without a realm`);
    const url = new URL(realm);
    const found = await this.lookup(host, scopes[0]?.repository);
    const service = challenge.params.service;
    const scopeParams = scopes.map(scopeString);
    let res: Awaited<ReturnType<HttpClient['send']>>;
    if (found?.credential.kind === 'identity-token') {
      // OAuth2 refresh-token grant, as docker does with an identity token.
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: found.credential.token,
        client_id: 'skiff',
      });
      if (service) form.set('service', service);
      if (scopeParams.length) form.set('scope', scopeParams.join(' '));
      res = await this.http.send({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        credentialBody: true,
        registry: host,
      });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const s of scopeParams) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (found?.credential.kind === 'basic') {
        const { username, password } = found.credential;
        headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
      }
      res = await this.http.send({ method: 'GET', url, headers, registry: host });
    }
    if (res.status !== 200) {
      const detail = await errorDetail(res);
      const who = found ? `credentials from ${found.source}` : 'anonymous access';
      throw new UnauthorizedError(
        `registry ${host} refused a token (${who}): HTTP ${res.status}${detail ? ` ${detail}` : ''}`,
      );
    }
    const body = TokenResponseSchema.safeParse(await res.body.json().catch(() => undefined));
    const token = body.success ? (body.data.token ?? body.data.access_token) : undefined;
    if (!token)
      throw new UnauthorizedError(
        `registry ${host}: the token server at ${url.host} answered without a token`,
      );
    const lifetime = (body.success && body.data.expires_in) || DEFAULT_TOKEN_LIFETIME_S;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + lifetime * 1000 - EXPIRY_MARGIN_MS };
  }

  private lookup(host: string, repository: string | undefined) {
    const key = `${host}/${repository ?? ''}`;
    let found = this.credentials.get(key);
    if (!found) {
      found = findCredentials(host, repository, this.credentialOptions);
      this.credentials.set(key, found);
    }
    return found;
  }
}

function tokenKey(host: string, scopes: Scope[]): string {
  return `${host}|${scopes.map(scopeString).sort().join(' ')}`;
}
