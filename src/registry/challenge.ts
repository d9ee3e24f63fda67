/** WWW-Authenticate parsing (RFC 7235 auth-params), as registries send it. */

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses one or more challenges: `Bearer realm="https://auth.example/token",service="registry",scope="..."`.
 * Quoted values may contain commas and escaped quotes.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const re = /\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*,?/gy;
  let current: Challenge | undefined;
  while (re.lastIndex < header.length) {
    const match = re.exec(header);
    if (match === null || match[0] === '') break;
    const [, token, rawValue] = match;
    if (rawValue === undefined) {
      // A bare token starts a new challenge (its scheme).
      current = { scheme: token!.toLowerCase(), params: {} };
      challenges.push(current);
      continue;
    }
    const value = rawValue.startsWith('"') ? rawValue.slice(1, -1).replace(/\\(.)/g, '$1') : rawValue;
    if (!current) continue;
    current.params[token!.toLowerCase()] = value;
  }
  return challenges;
}

/** All challenges of a WWW-Authenticate header, which may be repeated. */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  return (Array.isArray(header) ? header : [header]).flatMap(parseChallenges);
}
