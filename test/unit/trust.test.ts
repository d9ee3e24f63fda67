// Issue 14: the policy's scope rules (containers/image's), its validation, signedIdentity and the
// pure trust decision, and registries.d lookups — the parts that need no registry.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseReference } from '../../src/reference/index.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { decideTrust, type SignatureCheck, type TrustFacts } from '../../src/trust/decide.js';
import { identityMatches, parseIdentity } from '../../src/trust/identity.js';
import { enforceTrustPolicy } from '../../src/trust/index.js';
import { loadPolicy, parsePolicy, policyScopes, requirementsFor } from '../../src/trust/policy.js';
import { mergeFile, type RegistriesD, signatureSources } from '../../src/trust/registries-d.js';

const accept = [{ type: 'insecureAcceptAnything' }];
const reject = [{ type: 'reject' }];
const tagged = (scope: string) => [
  { type: 'signedBy', keyType: 'GPGKeys', keyPath: `/keys/${scope || 'any'}` },
];

describe('policy scopes', () => {
  it('lists the identity, then namespaces up to the host, then host wildcards without the port', () => {
    expect(policyScopes(parseReference('reg.example.com:5000/a/b/c:v1'))).toEqual({
      transport: 'docker',
      identity: 'reg.example.com:5000/a/b/c:v1',
      namespaces: [
        'reg.example.com:5000/a/b/c',
        'reg.example.com:5000/a/b',
        'reg.example.com:5000/a',
        'reg.example.com:5000',
        '*.example.com',
        '*.com',
      ],
    });
    expect(policyScopes(parseReference(`busybox@sha256:${'a'.repeat(64)}`)).identity).toBe(
      `docker.io/library/busybox@sha256:${'a'.repeat(64)}`,
    );
  });

  it('picks the most specific scope, then the transport default, then the top-level default', () => {
    const scopes = [
      'reg.example.com/a/b:v1',
      'reg.example.com/a/b',
      'reg.example.com/a',
      'reg.example.com',
      '*.example.com',
      '',
    ];
    const policy = parsePolicy(
      JSON.stringify({
        default: reject,
        transports: { docker: Object.fromEntries(scopes.map((s) => [s, tagged(s)])) },
      }),
      'policy.json',
    );
    const chosen = (ref: string) => requirementsFor(policy, parseReference(ref)).scope;
    expect(chosen('reg.example.com/a/b:v1')).toBe('reg.example.com/a/b:v1');
    expect(chosen('reg.example.com/a/b:v2')).toBe('reg.example.com/a/b');
    expect(chosen('reg.example.com/a/c:v1')).toBe('reg.example.com/a');
    expect(chosen('reg.example.com/z:v1')).toBe('reg.example.com');
    expect(chosen('other.example.com/z:v1')).toBe('*.example.com');
    expect(chosen('quay.io/z:v1')).toBe('');
    const noDocker = parsePolicy(
      JSON.stringify({ default: reject, transports: { oci: { '': accept } } }),
      'p',
    );
    expect(requirementsFor(noDocker, parseReference('quay.io/z:v1'))).toMatchObject({
      scope: 'default',
      requirements: reject,
    });
    expect(requirementsFor(noDocker, parseReference('oci:/tmp/layout:v1'))).toMatchObject({
      scope: '',
      requirements: accept,
    });
  });

  it('refuses a malformed policy naming the file and the fault', () => {
    const bad = (doc: unknown) => () => parsePolicy(JSON.stringify(doc), '/etc/p.json');
    expect(bad({})).toThrow('policy /etc/p.json is invalid: default: ');
    expect(bad({ default: [] })).toThrow('default: a requirement list must not be empty');
    expect(bad({ default: [{ type: 'signedBy', keyType: 'X509Certificates', keyPath: '/k' }] })).toThrow(
      'default.0.keyType: keyType must be "GPGKeys"',
    );
    expect(bad({ default: [{ type: 'sigstoreSigned', keyPath: '/k', keyData: 'AAAA' }] })).toThrow(
      'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio',
    );
    expect(
      bad({
        default: [{ type: 'sigstoreSigned', fulcio: { caPath: '/ca', oidcIssuer: 'i', subjectEmail: 'e' } }],
      }),
    ).toThrow('fulcio needs a Rekor public key');
    expect(bad({ default: accept, extra: 1 })).toThrow('is invalid');
    expect(bad({ default: [{ type: 'insecureAcceptAnything', keyPath: '/k' }] })).toThrow('is invalid');
    expect(bad({ default: accept, transports: { docker: { '*.exa mple.com': accept } } })).toThrow(
      'transports.docker: scope "*.exa mple.com" is not a valid wildcard domain',
    );
    expect(bad({ default: accept, transports: { oci: { 'relative/dir': accept } } })).toThrow(
      'transports.oci: scope "relative/dir" must be an absolute path',
    );
    // What containers/image accepts (a scope that can never match), skiff accepts too.
    expect(bad({ default: accept, transports: { docker: { 'docker.io/busybox': accept } } })).not.toThrow();
    expect(() => parsePolicy('{', 'p.json')).toThrow('policy p.json is invalid: ');
  });

  it('reads --policy, else ~/.config/containers/policy.json, else the system file, else none', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-policy-'));
    const system = path.join(home, 'system.json');
    expect(await loadPolicy({ home, systemFile: system })).toBeUndefined();
    fs.writeFileSync(system, JSON.stringify({ default: reject }));
    expect((await loadPolicy({ home, systemFile: system }))?.file).toBe(system);
    const user = path.join(home, '.config/containers/policy.json');
    fs.mkdirSync(path.dirname(user), { recursive: true });
    fs.writeFileSync(user, JSON.stringify({ default: accept }));
    expect((await loadPolicy({ home, systemFile: system }))?.file).toBe(user);
    const flag = path.join(home, 'flag.json');
    await expect(loadPolicy({ flag, home, systemFile: system })).rejects.toThrow(`policy ${flag}: ENOENT`);
    fs.rmSync(home, { recursive: true });
  });
});

describe('signedIdentity', () => {
  const image = (ref: string) => parseIdentity(ref)!;
  const signed = (ref: string) => parseIdentity(ref)!;
  const digest = `sha256:${'b'.repeat(64)}`;

  it('matchRepoDigestOrExact: exact for a tag, the repository for a digest', () => {
    const rule = { type: 'matchRepoDigestOrExact' } as const;
    expect(identityMatches(rule, image('r.io/a:v1'), signed('r.io/a:v1'))).toBe(true);
    expect(identityMatches(rule, image('r.io/a:v1'), signed('r.io/a:v2'))).toBe(false);
    expect(identityMatches(rule, image('r.io/a:v1'), signed('r.io/a'))).toBe(false);
    expect(identityMatches(rule, image(`r.io/a@${digest}`), signed('r.io/a:anything'))).toBe(true);
    expect(identityMatches(rule, image(`r.io/a@${digest}`), signed('r.io/b:v1'))).toBe(false);
  });

  it('matchExact, matchRepository, exactReference, exactRepository', () => {
    expect(identityMatches({ type: 'matchExact' }, image(`r.io/a@${digest}`), signed('r.io/a:v1'))).toBe(
      false,
    );
    expect(identityMatches({ type: 'matchRepository' }, image('r.io/a:v1'), signed('r.io/a:v9'))).toBe(true);
    expect(identityMatches({ type: 'matchRepository' }, image('r.io/a:v1'), signed('r.io/ab:v1'))).toBe(
      false,
    );
    const exactRef = { type: 'exactReference', dockerReference: 'busybox:1' } as const;
    expect(identityMatches(exactRef, image('r.io/a:v1'), signed('docker.io/library/busybox:1'))).toBe(true);
    expect(identityMatches(exactRef, image('r.io/a:v1'), signed('docker.io/library/busybox:2'))).toBe(false);
    const exactRepo = { type: 'exactRepository', dockerRepository: 'r.io/signed' } as const;
    expect(identityMatches(exactRepo, image('r.io/a:v1'), signed('r.io/signed:v7'))).toBe(true);
  });

  it('remapIdentity rewrites the prefix on a path boundary only', () => {
    const rule = { type: 'remapIdentity', prefix: 'mirror.local/ns', signedPrefix: 'quay.io/org' } as const;
    expect(identityMatches(rule, image('mirror.local/ns/app:v1'), signed('quay.io/org/app:v1'))).toBe(true);
    expect(identityMatches(rule, image('mirror.local/nsx/app:v1'), signed('quay.io/orgx/app:v1'))).toBe(
      false,
    );
    expect(identityMatches(rule, image('mirror.local/ns/app:v1'), signed('mirror.local/ns/app:v1'))).toBe(
      false,
    );
  });
});

describe('the trust decision', () => {
  const manifestDigest = `sha256:${'c'.repeat(64)}`;
  const key = { type: 'sigstoreSigned' as const, keyPath: '/k.pub' };
  const good = (
    over: Partial<{ dockerManifestDigest: string; dockerReference: string }> = {},
  ): SignatureCheck => ({
    origin: 'sig 0',
    verified: true,
    signer: '/k.pub',
    claims: { dockerManifestDigest: manifestDigest, dockerReference: 'r.io/a:v1', ...over },
  });
  const facts = (checks: SignatureCheck[], requirements = [key]): TrustFacts => ({
    image: parseIdentity('r.io/a:v1'),
    manifestDigest,
    requirements: requirements.map((requirement) => ({ requirement, checks })),
  });

  it('accepts on the first signature that verifies, names the manifest and the identity', () => {
    const bad: SignatureCheck = { origin: 'sig 1', verified: false, failure: 'wrong-key', detail: 'x' };
    expect(decideTrust(facts([bad, good()]))).toEqual({
      accepted: true,
      by: [{ type: 'sigstoreSigned', signer: '/k.pub', signedIdentity: 'r.io/a:v1', origin: 'sig 0' }],
    });
  });

  it('rejects with every signature’s reason', () => {
    const decision = decideTrust(
      facts([
        { origin: 'sig 1', verified: false, failure: 'wrong-key', detail: 'none of 1 key' },
        good({ dockerManifestDigest: `sha256:${'d'.repeat(64)}` }),
        good({ dockerReference: 'r.io/b:v1' }),
      ]),
    );
    expect(decision).toEqual({
      accepted: false,
      requirement: 'sigstoreSigned',
      reasons: [
        'sig 1: wrong key (none of 1 key)',
        `sig 0: bad payload digest (signs sha256:${'d'.repeat(64)}, not ${manifestDigest})`,
        'sig 0: identity mismatch (signed for r.io/b:v1, matchRepoDigestOrExact)',
      ],
    });
    expect(decideTrust(facts([]))).toMatchObject({ accepted: false, reasons: ['no signature'] });
  });

  it('needs every requirement: reject anywhere rejects, insecureAcceptAnything adds nothing', () => {
    expect(decideTrust(facts([good()], [{ type: 'insecureAcceptAnything' } as never, key]))).toMatchObject({
      accepted: true,
      by: [{ type: 'insecureAcceptAnything' }, { type: 'sigstoreSigned' }],
    });
    expect(decideTrust(facts([good()], [key, { type: 'reject' } as never]))).toMatchObject({
      accepted: false,
      requirement: 'reject',
    });
  });
});

describe('registries.d', () => {
  const config = (): RegistriesD => ({ dir: '/d', defaultDocker: undefined, docker: new Map() });

  it('takes each setting from the most specific scope that sets it, the old sigstore names too', () => {
    const c = config();
    mergeFile(
      c,
      'a.yaml',
      'default-docker:\n  lookaside: file:///default\n  use-sigstore-attachments: false\n',
    );
    mergeFile(
      c,
      'b.yaml',
      'docker:\n  r.io/ns:\n    sigstore: https://sigs.r.io/\n  r.io/ns/app:\n    use-sigstore-attachments: true\n',
    );
    expect(signatureSources(c, parseReference('r.io/ns/app:v1') as never)).toEqual({
      lookaside: 'https://sigs.r.io/',
      useSigstoreAttachments: true,
    });
    expect(signatureSources(c, parseReference('q.io/x:v1') as never)).toEqual({
      lookaside: 'file:///default',
      useSigstoreAttachments: false,
    });
  });

  it('refuses a malformed file or a scope defined twice, naming the file', () => {
    const c = config();
    expect(() => mergeFile(c, '/d/x.yaml', 'docker:\n  r.io:\n    lookasid: x\n')).toThrow(
      'registries.d file /d/x.yaml is invalid: docker.r.io: ',
    );
    mergeFile(c, '/d/a.yaml', 'docker:\n  r.io:\n    lookaside: file:///a\n');
    expect(() => mergeFile(c, '/d/b.yaml', 'docker:\n  r.io:\n    lookaside: file:///b\n')).toThrow(
      'docker scope "r.io" is defined in more than one file',
    );
  });
});

describe('policy keys', () => {
  it('a signedBy key file that is not a GPG key is one usage error naming the policy and the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-trust-keys-'));
    try {
      const junk = path.join(dir, 'junk.gpg');
      fs.writeFileSync(junk, 'not a key');
      const file = path.join(dir, 'policy.json');
      const policy = parsePolicy(
        JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: junk }] }),
        file,
      );
      // The keys are read before any signature is looked for: no client is needed to get there.
      const refused = enforceTrustPolicy({
        settings: { policy, registriesD: { dir: undefined, defaultDocker: undefined, docker: new Map() } },
        reference: parseReference('reg.example.com/app:v1'),
        manifestDigest: `sha256:${'a'.repeat(64)}`,
        client: {} as RegistryClient,
      });
      await expect(refused).rejects.toMatchObject({
        exitCode: 1,
        message: expect.stringMatching(
          new RegExp(`^policy ${file}: signedBy key file ${junk} is not a GPG key: `),
        ),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
