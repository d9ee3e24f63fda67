/**
 * Checking credentials before `skiff login` saves them, as podman does: the registry's `/v2/`
 * answered with them (Basic, or a token from the realm its Bearer challenge names, asked for no
 * repository scope). A refusal is exit 2, as any refused credentials.
 */
import { DOCKER_HUB, DOCKER_HUB_ENDPOINT } from '../reference/index.js';
import type { RegistryClient } from './client.js';
import { errorDetail, statusToSkiffError } from './http.js';

/** The API host of a login key (`host[:port][/namespace]`; docker.io is served elsewhere). */
export function loginEndpoint(key: string): string {
  const host = key.split('/')[0]!.toLowerCase();
  return host === DOCKER_HUB || host === 'index.docker.io' ? DOCKER_HUB_ENDPOINT : host;
}

/** Resolves when the registry accepts the client's credentials; throws the refusal otherwise. */
export async function checkCredentials(client: RegistryClient, key: string): Promise<void> {
  const endpoint = loginEndpoint(key);
  const res = await client.request(endpoint, [], { method: 'GET', path: '/v2/' });
  if (res.status === 200) {
    await res.body.dump();
    return;
  }
  const detail = await errorDetail(res);
  throw statusToSkiffError(
    res.status,
    `registry ${endpoint} answered the login with HTTP ${res.status}${detail ? `: ${detail}` : ''}`,
  );
}
