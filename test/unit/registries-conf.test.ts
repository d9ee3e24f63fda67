// registries.conf as containers-registries.conf(5) specifies it: locations, drop-ins, validation,
// and the pure resolver (mirrors in order then the primary, pull-from-mirror, blocked, wildcard
// prefixes, insecure hosts, aliases and short-name modes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors/index.js';
import { parseRegistryReference } from '../../src/reference/index.js';
import { isInsecureHost, pullSources, resolveShortName } from '../../src/registry/pull-sources.js';
import { loadRegistriesConf, type RegistriesConfig } from '../../src/registry/registries-conf.js';

let root: string;
let home: string;
let systemDir: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-regconf-'));
  home = path.join(root, 'home');
  systemDir = path.join(root, 'etc');
  fs.mkdirSync(path.join(systemDir, 'registries.conf.d'), { recursive: true });
  fs.mkdirSync(path.join(home, '.config/containers'), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function write(file: string, text: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

const load = (options: { file?: string; env?: NodeJS.ProcessEnv } = {}) =>
  loadRegistriesConf({
    home,
    systemDir,
    aliasCacheFile: path.join(root, 'cache/containers/short-name-aliases.conf'),
    env: { HOME: home, ...options.env },
    ...(options.file ? { file: options.file } : {}),
  });

async function config(text: string): Promise<RegistriesConfig> {
  const file = write(path.join(root, 'registries.conf'), text);
  const loaded = await load({ file });
  if (!loaded) throw new Error('no config');
  return loaded;
}

function endpoints(conf: RegistriesConfig, ref: string) {
  const sources = pullSources(conf, parseRegistryReference(ref));
  if (sources.blocked) return 'blocked';
  return sources.endpoints.map((e) => ({
    name: `${e.reference.registry}/${e.reference.repository}${e.reference.tag ? `:${e.reference.tag}` : ''}${e.reference.digest ? `@${e.reference.digest}` : ''}`,
    insecure: e.insecure,
    mirror: e.mirror,
  }));
}

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('finding the files', () => {
  it('is undefined when no file exists anywhere (Docker rules stay)', async () => {
    expect(await load()).toBeUndefined();
  });

  it('reads the system file and both drop-in directories in order; a later drop-in wins', async () => {
    write(path.join(systemDir, 'registries.conf'), 'unqualified-search-registries = ["a.example"]\n');
    write(
      path.join(systemDir, 'registries.conf.d/10-b.conf'),
      'unqualified-search-registries = ["b.example"]\n[aliases]\n"x" = "b.example/x"\n',
    );
    write(path.join(systemDir, 'registries.conf.d/ignored.txt'), 'not toml [');
    write(
      path.join(home, '.config/containers/registries.conf.d/20-c.conf'),
      '[aliases]\n"x" = "c.example/x"\n',
    );
    const conf = await load();
    expect(conf?.searchRegistries).toEqual(['b.example']);
    expect(conf?.aliases.get('x')?.value).toBe('c.example/x');
    expect(conf?.files.map((f) => path.relative(root, f))).toEqual([
      'etc/registries.conf',
      'etc/registries.conf.d/10-b.conf',
      'home/.config/containers/registries.conf.d/20-c.conf',
    ]);
  });

  it("a user's registries.conf replaces the system file and the system drop-ins", async () => {
    write(path.join(systemDir, 'registries.conf'), 'unqualified-search-registries = ["system.example"]\n');
    write(path.join(systemDir, 'registries.conf.d/a.conf'), '[aliases]\n"x" = "system.example/x"\n');
    write(
      path.join(home, '.config/containers/registries.conf'),
      'unqualified-search-registries = ["user.example"]\n',
    );
    const conf = await load();
    expect(conf?.searchRegistries).toEqual(['user.example']);
    expect(conf?.aliases.has('x')).toBe(false);
  });

  it('$CONTAINERS_REGISTRIES_CONF and --registries-conf replace the main file; the flag wins', async () => {
    write(path.join(systemDir, 'registries.conf'), 'unqualified-search-registries = ["system.example"]\n');
    const env = write(path.join(root, 'env.conf'), 'unqualified-search-registries = ["env.example"]\n');
    const flag = write(path.join(root, 'flag.conf'), 'unqualified-search-registries = ["flag.example"]\n');
    expect((await load({ env: { CONTAINERS_REGISTRIES_CONF: env } }))?.searchRegistries).toEqual([
      'env.example',
    ]);
    expect((await load({ file: flag, env: { CONTAINERS_REGISTRIES_CONF: env } }))?.searchRegistries).toEqual([
      'flag.example',
    ]);
  });

  it('a --registries-conf file that does not exist is a usage error naming it', async () => {
    const missing = path.join(root, 'missing.conf');
    await expect(load({ file: missing })).rejects.toThrow(
      `cannot read registries configuration ${missing}: ENOENT`,
    );
  });

  it('a file of comments and blank lines is the empty configuration; a key after comments is read and checked', async () => {
    const empty = await config('# comments only, as Debian ships it\n\n  # indented\r\n\t\n# last');
    expect(empty).toMatchObject({ registries: [], searchRegistries: [], shortNameMode: 'permissive' });
    expect(empty.aliases.size).toBe(0);
    expect((await config('# a comment\nshort-name-mode = "enforcing" # why\n')).shortNameMode).toBe(
      'enforcing',
    );
    await expect(config('# a comment\nshort-name-mode = "strict"\n')).rejects.toThrow(/short-name-mode: /);
  });

  it('an empty alias in a drop-in erases it', async () => {
    write(path.join(systemDir, 'registries.conf'), '[aliases]\n"x" = "a.example/x"\n');
    write(path.join(systemDir, 'registries.conf.d/z.conf'), '[aliases]\n"x" = ""\n');
    expect((await load())?.aliases.has('x')).toBe(false);
  });
});

describe('validation: one usage error naming the file and the key', () => {
  const cases: Array<[string, string]> = [
    ['unqualified-search-registries = ["a.example"\n', 'is not valid TOML (line 2, column 1)'],
    [
      '[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "sometimes"\n',
      'registry[0].mirror[0].pull-from-mirror: ',
    ],
    ['[[registry]]\nlocation = "a.example"\ninsecure = "yes"\n', 'registry[0].insecure: '],
    [
      '[[registry]]\nlocation = "https://a.example"\n',
      'registry[0].location: "https://a.example": give host[:port][/path]',
    ],
    ['[[registry]]\nblocked = true\n', 'registry[0]: needs a prefix or a location'],
    [
      '[[registry]]\nprefix = "a.*.example"\n',
      'registry[0].prefix: "a.*.example": a wildcard is only allowed',
    ],
    ['short-name-mode = "strict"\n', 'short-name-mode: '],
    ['[aliases]\n"quay.io/x" = "quay.io/x"\n', 'aliases.quay.io/x: an alias must be a short name'],
    ['[aliases]\n"x" = "x"\n', 'aliases.x: "x" must be a fully qualified name'],
    ['[aliases]\n"x" = "quay.io/x:1"\n', 'aliases.x: "quay.io/x:1" may not carry a tag or digest'],
    [
      '[[registry]]\nlocation = "a.example"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "all"\n',
      'registry[0].mirror[0].pull-from-mirror: cannot be set',
    ],
    [
      'unqualified-search-registries = ["a.example/path"]\n',
      'unqualified-search-registries[0]: "a.example/path" is not a host[:port]',
    ],
    [
      '[registries.search]\nregistries = ["a.example"]\n[[registry]]\nlocation = "b.example"\n',
      'registries: mixes the version 1 lists',
    ],
  ];
  it.each(cases)('%j', async (text, message) => {
    const error = await config(text).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain(
      `registries configuration ${path.join(root, 'registries.conf')}`,
    );
    expect((error as UsageError).message).toContain(message);
    expect((error as UsageError).message).not.toContain('\n');
  });
});

describe('endpoints for a reference', () => {
  it('mirrors in order, then the primary location; tag and digest kept; insecure per endpoint', async () => {
    const conf = await config(`
[[registry]]
prefix = "example.com/foo"
location = "internal.example/bar"
[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"
[[registry.mirror]]
location = "mirror-1.local:5000/mirrors/foo"
insecure = true
`);
    expect(endpoints(conf, 'example.com/foo/image:latest')).toEqual([
      { name: 'mirror-0.local/mirror-for-foo/image:latest', insecure: false, mirror: true },
      { name: 'mirror-1.local:5000/mirrors/foo/image:latest', insecure: true, mirror: true },
      { name: 'internal.example/bar/image:latest', insecure: false, mirror: false },
    ]);
    // A prefix matches at a separator only, and the longest prefix wins.
    expect(endpoints(conf, 'example.com/foobar:1')).toEqual([
      { name: 'example.com/foobar:1', insecure: false, mirror: false },
    ]);
  });

  it('the longest matching prefix is chosen', async () => {
    const conf = await config(`
[[registry]]
location = "quay.io"
insecure = true
[[registry]]
prefix = "quay.io/org/app"
location = "copy.example/app"
`);
    expect(endpoints(conf, 'quay.io/org/app:1')).toEqual([
      { name: 'copy.example/app:1', insecure: false, mirror: false },
    ]);
    expect(endpoints(conf, 'quay.io/org/other:1')).toEqual([
      { name: 'quay.io/org/other:1', insecure: true, mirror: false },
    ]);
  });

  it('pull-from-mirror: digest-only mirrors serve digests, tag-only mirrors serve tags', async () => {
    const conf = await config(`
[[registry]]
location = "primary.example"
[[registry.mirror]]
location = "digests.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.example"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.example"
`);
    const names = (ref: string) =>
      (endpoints(conf, ref) as Array<{ name: string }>).map((e) => e.name.split('/')[0]);
    expect(names('primary.example/app:1')).toEqual(['tags.example', 'all.example', 'primary.example']);
    expect(names(`primary.example/app@${DIGEST}`)).toEqual([
      'digests.example',
      'all.example',
      'primary.example',
    ]);
  });

  it('mirror-by-digest-only uses the mirrors for digests only', async () => {
    const conf = await config(`
[[registry]]
location = "primary.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.example"
`);
    expect(endpoints(conf, 'primary.example/app:1')).toHaveLength(1);
    expect(endpoints(conf, `primary.example/app@${DIGEST}`)).toHaveLength(2);
  });

  it('docker.io names carry library/, and a mirror of Docker Hub keeps the path', async () => {
    const conf = await config(`
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "hub-cache.local:5000"
`);
    const sources = pullSources(conf, parseRegistryReference('alpine:3'));
    expect(sources.blocked).toBe(false);
    if (sources.blocked) return;
    expect(sources.endpoints.map((e) => [e.reference.endpoint, e.reference.repository])).toEqual([
      ['hub-cache.local:5000', 'library/alpine'],
      ['registry-1.docker.io', 'library/alpine'],
    ]);
  });

  it('blocked registries, wildcard prefixes included', async () => {
    const conf = await config(`
[[registry]]
location = "bad.example"
blocked = true
[[registry]]
prefix = "*.evil.example"
blocked = true
[[registry]]
prefix = "ok.example/team"
location = "ok.example/team"
[[registry]]
prefix = "ok.example"
blocked = true
`);
    expect(endpoints(conf, 'bad.example/app:1')).toBe('blocked');
    expect(endpoints(conf, 'a.evil.example/app:1')).toBe('blocked');
    expect(endpoints(conf, 'a.b.evil.example:5000/app:1')).toBe('blocked');
    expect(endpoints(conf, 'evil.example/app:1')).not.toBe('blocked');
    expect(endpoints(conf, 'ok.example/other:1')).toBe('blocked');
    expect(endpoints(conf, 'ok.example/team/app:1')).not.toBe('blocked');
  });

  it('insecure hosts: a registry entry or an insecure mirror', async () => {
    const conf = await config(`
[[registry]]
location = "plain.example:5000"
insecure = true
[[registry]]
location = "tls.example"
[[registry.mirror]]
location = "m.example:8080/cache"
insecure = true
`);
    expect(isInsecureHost(conf, 'plain.example:5000')).toBe(true);
    expect(isInsecureHost(conf, 'm.example:8080')).toBe(true);
    expect(isInsecureHost(conf, 'tls.example')).toBe(false);
    expect(isInsecureHost(undefined, 'plain.example:5000')).toBe(false);
  });

  it('version 1 lists: search, insecure and block', async () => {
    const conf = await config(`
[registries.search]
registries = ["s.example"]
[registries.insecure]
registries = ["i.example"]
[registries.block]
registries = ["b.example"]
`);
    expect(conf.searchRegistries).toEqual(['s.example']);
    expect(endpoints(conf, 'b.example/x:1')).toBe('blocked');
    expect(isInsecureHost(conf, 'i.example')).toBe(true);
  });
});

describe('short names', () => {
  it('qualified names and transports are left alone; without any config, Docker rules', async () => {
    expect(resolveShortName('quay.io/x:1', undefined)).toEqual({
      candidates: ['quay.io/x:1'],
      via: 'qualified',
    });
    expect(resolveShortName('oci:/tmp/x', undefined).via).toBe('qualified');
    expect(resolveShortName('localhost/x', undefined).via).toBe('qualified');
    expect(resolveShortName('alpine', undefined)).toEqual({ candidates: ['alpine'], via: 'docker' });
  });

  it('an alias wins over the search registries, with the tag or digest appended', async () => {
    const conf = await config(
      'unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "enforcing"\n[aliases]\n"tool" = "quay.io/org/tool"\n',
    );
    expect(resolveShortName('tool:1.2', conf).candidates).toEqual(['quay.io/org/tool:1.2']);
    expect(resolveShortName(`tool@${DIGEST}`, conf).candidates).toEqual([`quay.io/org/tool@${DIGEST}`]);
  });

  it('enforcing: one search registry is no ambiguity; several without a prompt are refused', async () => {
    const one = await config(
      'unqualified-search-registries = ["a.example"]\nshort-name-mode = "enforcing"\n',
    );
    expect(resolveShortName('app:1', one).candidates).toEqual(['a.example/app:1']);
    const two = await config(
      'unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "enforcing"\n',
    );
    expect(() => resolveShortName('app:1', two)).toThrow(
      /short name "app:1" is ambiguous .*skiff does not prompt/,
    );
  });

  it('permissive (the default) and disabled try every search registry in order', async () => {
    const permissive = await config('unqualified-search-registries = ["a.example", "b.example"]\n');
    expect(permissive.shortNameMode).toBe('permissive');
    expect(resolveShortName('app', permissive).candidates).toEqual(['a.example/app', 'b.example/app']);
    const disabled = await config(
      'unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "disabled"\n',
    );
    expect(resolveShortName('app', disabled).candidates).toEqual(['a.example/app', 'b.example/app']);
  });

  it('no alias and no search registry: refused, naming the files', async () => {
    const conf = await config('[aliases]\n"x" = "quay.io/x"\n');
    expect(() => resolveShortName('app', conf)).toThrow(
      /did not resolve to an alias and no unqualified-search registries are defined in .*registries\.conf/,
    );
  });

  it("podman's recorded aliases (short-name-aliases.conf) win", async () => {
    write(
      path.join(root, 'cache/containers/short-name-aliases.conf'),
      '[aliases]\n"tool" = "cache.example/tool"\n',
    );
    const conf = await config('[aliases]\n"tool" = "quay.io/org/tool"\n');
    expect(resolveShortName('tool', conf).candidates).toEqual(['cache.example/tool']);
  });
});
