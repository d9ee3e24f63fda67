// The byte-keeping tar reader: every input byte comes back, in order, for real GNU and PAX tars.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JS fixture library without type declarations
import { materialize, TREES } from '../../fixtures/lib/trees.mjs';
import { VerificationError } from '../../src/errors/index.js';
import { readTar, type TarEntry, TarTokenizer } from '../../src/formats/tar.js';
import { tempDir } from '../harness/cli.js';
import { END, entry, makeTar, padded, paxRecord, ustarHeader } from '../harness/tar-writer.js';

async function read(tar: Buffer, chunk = 4096) {
  const pieces: Buffer[] = [];
  const entries: TarEntry[] = [];
  const contents = new Map<string, Buffer[]>();
  let current: string | undefined;
  async function* input() {
    for (let i = 0; i < tar.length; i += chunk) yield tar.subarray(i, i + chunk);
  }
  for await (const token of readTar(input())) {
    if (token.kind === 'raw' || token.kind === 'data') pieces.push(token.bytes);
    if (token.kind === 'entry') {
      entries.push(token.entry);
      current = token.entry.name;
      contents.set(current, []);
    }
    if (token.kind === 'data') contents.get(current!)!.push(token.bytes);
  }
  return {
    bytes: Buffer.concat(pieces),
    entries,
    content: (name: string) => Buffer.concat(contents.get(name) ?? []),
  };
}

let work: { dir: string; cleanup: () => void };
const tars: Record<string, Buffer> = {};
beforeAll(() => {
  work = tempDir('skiff-tar-');
  const tree = path.join(work.dir, 'tree');
  materialize(TREES.base, tree);
  for (const format of ['gnu', 'posix', 'ustar', 'oldgnu']) {
    const out = path.join(work.dir, `${format}.tar`);
    try {
      execFileSync('tar', ['--sort=name', `--format=${format}`, '-C', tree, '-cf', out, '.'], {
        stdio: 'ignore',
      });
      tars[format] = fs.readFileSync(out);
    } catch {
      // ustar cannot hold the long name: that format is simply not tested
    }
  }
});
afterAll(() => work.cleanup());

describe('readTar', () => {
  it('gives back every byte, in order, for GNU tar output in every format it writes', async () => {
    expect(Object.keys(tars)).toEqual(expect.arrayContaining(['gnu', 'posix', 'oldgnu']));
    for (const [format, tar] of Object.entries(tars)) {
      for (const chunk of [1, 511, 512, 4096, 1 << 20]) {
        if (chunk === 1 && tar.length > 200_000) continue;
        expect((await read(tar, chunk)).bytes.equals(tar), `${format} in ${chunk}-byte chunks`).toBe(true);
      }
    }
  });

  it('reads names, long names, links, modes, owners and contents', async () => {
    const { entries, content } = await read(tars.posix!);
    const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, '').replace(/\/$/, ''), e]));
    expect(byName.get('usr/bin/suid-tool')).toMatchObject({ type: 'file', mode: 0o4755, size: 3000 });
    expect(byName.get('usr/bin/tool-link')).toMatchObject({
      type: 'hardlink',
      linkname: './usr/bin/tool',
      size: 0,
    });
    expect(byName.get('etc/localtime')).toMatchObject({
      type: 'symlink',
      linkname: '/usr/share/zoneinfo/UTC',
    });
    expect(byName.get('home/user')).toMatchObject({ type: 'dir', uid: 1000, gid: 1000, mode: 0o700 });
    expect(byName.get('var/spool/fifo')).toMatchObject({ type: 'fifo' });
    expect(
      [...byName.keys()].some((n) => n.length > 100 && n.endsWith('README-with-a-long-name-too.txt')),
    ).toBe(true);
    expect(byName.has('usr/share/doc/ünïcödé.txt')).toBe(true);
    expect(content('./etc/hostname').toString()).toBe('skiff\n');
  });

  it('reads no content after header-only entries, whatever their size field says (as Go and GNU tar)', async () => {
    const tar = makeTar([
      { name: 'link', type: 'symlink', linkname: 'target' },
      { name: 'file', content: 'after the link\n' },
    ]);
    // Give the symlink header a size of 512 (and a fixed checksum): a naive reader would swallow the file.
    tar.write('00000001000\u0000', 124, 'latin1');
    tar.write('        ', 148, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[i]!;
    tar.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    const { entries, content, bytes } = await read(tar);
    expect(entries.map((e) => [e.name, e.type, e.size])).toEqual([
      ['link', 'symlink', 0],
      ['file', 'file', 15],
    ]);
    expect(content('file').toString()).toBe('after the link\n');
    expect(bytes.equals(tar)).toBe(true);
  });

  it("reads extension headers as Go's archive/tar does (what Docker and containers/storage unpack)", async () => {
    const longName = (name: string) => {
      const body = Buffer.from(`${name}\0`);
      return Buffer.concat([
        ustarHeader({ name: '././@LongLink', type: 'L', size: body.length }),
        padded(body),
      ]);
    };
    const pax = (type: 'x' | 'g', records: Array<[string, string]>) => {
      const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
      return Buffer.concat([ustarHeader({ name: 'PaxHeaders/h', type, size: body.length }), padded(body)]);
    };
    const tar = Buffer.concat([
      // A GNU long name wins over a PAX path.
      pax('x', [['path', 'from-pax']]),
      longName('from-gnu-long-name'),
      entry({ name: 'short' }, Buffer.from('one')),
      // A global header applies to nothing after it (not even its size), and drops what was pending.
      pax('x', [['uid', '9']]),
      pax('g', [
        ['path', 'global'],
        ['uid', '7'],
        ['size', '1'],
      ]),
      entry({ name: 'plain' }, Buffer.from('two')),
      // A second PAX header replaces the first.
      pax('x', [
        ['path', 'first'],
        ['uid', '5'],
      ]),
      pax('x', [['path', 'second']]),
      entry({ name: 'ignored' }, Buffer.from('three')),
      END,
    ]);
    const { entries, content, bytes } = await read(tar, 700);
    expect(entries.map((e) => [e.name, e.uid])).toEqual([
      ['from-gnu-long-name', 0],
      ['plain', 0],
      ['second', 0],
    ]);
    expect(content('plain').toString()).toBe('two');
    expect(bytes.equals(tar)).toBe(true);
  });

  it('refuses a corrupt header, a truncated stream and GNU sparse files', async () => {
    const good = makeTar([{ name: 'a', content: 'x'.repeat(1000) }]);
    const corrupt = Buffer.from(good);
    corrupt[10] = 0x41;
    await expect(read(corrupt)).rejects.toThrow(/checksum/);
    await expect(read(good.subarray(0, 700))).rejects.toBeInstanceOf(VerificationError);
    const sparse = makeTar([{ name: 's', content: '' }]);
    sparse.write('S', 156, 'latin1');
    sparse.write('        ', 148, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += sparse[i]!;
    sparse.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    await expect(read(sparse)).rejects.toThrow(/sparse/);
  });
});

describe('TarTokenizer', () => {
  it('refuses a stream that ends inside an extension record, keeps a short tail as raw bytes', () => {
    const tar = tars.posix!;
    // The first header of a GNU tar --format=posix archive is a PAX record ('x').
    expect(String.fromCharCode(tar[156]!)).toBe('x');
    const cut = new TarTokenizer();
    cut.push(tar.subarray(0, 600));
    expect(() => cut.end()).toThrow(/truncated at offset 512/);

    const plain = makeTar([{ name: 'a', content: 'abc' }]);
    const tail = Buffer.from('xyz');
    const tokenizer = new TarTokenizer();
    const tokens = [...tokenizer.push(plain.subarray(0, 1024)), ...tokenizer.end()];
    expect(tokens.map((t) => t.kind)).toEqual(['raw', 'entry', 'data', 'end-entry', 'raw']);
    const unterminated = new TarTokenizer();
    const rest = [
      ...unterminated.push(Buffer.concat([plain.subarray(0, 1024), tail])),
      ...unterminated.end(),
    ];
    expect(rest.at(-1)).toEqual({ kind: 'raw', bytes: tail });
  });

  it('accepts the checksum as unsigned or (old tars) signed byte sums, and nothing else', () => {
    const header = ustarHeader({ name: 'caf\u00e9-\u00fc', type: '5' });
    const withSum = (sum: number) => {
      const copy = Buffer.from(header);
      copy.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return Buffer.concat([copy, END]);
    };
    let unsigned = 0;
    let signed = 0;
    header.forEach((byte, i) => {
      const b = i >= 148 && i < 156 ? 0x20 : byte;
      unsigned += b;
      signed += b > 127 ? b - 256 : b;
    });
    expect(unsigned).not.toBe(signed);
    for (const sum of [unsigned, signed]) {
      const tokens = new TarTokenizer().push(withSum(sum));
      expect(tokens.find((t) => t.kind === 'entry')).toMatchObject({ entry: { name: 'caf\u00e9-\u00fc' } });
    }
    for (const sum of [unsigned + 1, signed - 1])
      expect(() => new TarTokenizer().push(withSum(sum))).toThrow(/checksum mismatch/);
  });

  it("takes a file's whole content held back by the caller, and nothing else", () => {
    const tar = makeTar([
      { name: 'dir', type: 'dir' },
      { name: 'dir/a', content: 'x'.repeat(700) },
      { name: 'dir/b', content: 'yz' },
    ]);
    // Headers and padding as bytes, contents held: the tokens a reading of the bytes would give.
    const dirHeader = tar.subarray(0, 512);
    const aHeader = tar.subarray(512, 1024);
    const bHeader = tar.subarray(2048, 2560);
    const tokenizer = new TarTokenizer();
    const kinds = [
      ...tokenizer.push(Buffer.concat([dirHeader, aHeader])),
      ...tokenizer.held(700, 'sha256:a'),
      ...tokenizer.push(Buffer.concat([tar.subarray(1724, 2048), bHeader])),
      ...tokenizer.held(2, 'sha256:b'),
      ...tokenizer.push(tar.subarray(2562)),
      ...tokenizer.end(),
    ].map((t) => (t.kind === 'held' ? `held ${t.size} ${t.id}` : t.kind));
    expect(kinds).toEqual([
      'raw',
      'entry',
      'end-entry',
      'raw',
      'entry',
      'held 700 sha256:a',
      'end-entry',
      'raw',
      'raw',
      'entry',
      'held 2 sha256:b',
      'end-entry',
      'raw', // padding
      'raw', // the end-of-archive block
      'raw', // and its twin, kept verbatim
    ]);

    // Content held where there is none, of the wrong size, or after part of it came as bytes.
    const onDirectory = new TarTokenizer();
    onDirectory.push(dirHeader);
    expect(() => onDirectory.held(700, 'sha256:a')).toThrow(VerificationError);
    const wrongSize = new TarTokenizer();
    wrongSize.push(aHeader);
    expect(() => wrongSize.held(699, 'sha256:a')).toThrow(/699 content bytes at offset 512/);
    const partly = new TarTokenizer();
    partly.push(Buffer.concat([aHeader, tar.subarray(1024, 1124)]));
    expect(() => partly.held(600, 'sha256:a')).toThrow(VerificationError);
    expect(() => partly.held(700, 'sha256:a')).toThrow(VerificationError);
    const twice = new TarTokenizer();
    twice.push(aHeader);
    twice.held(700, 'sha256:a');
    expect(() => twice.held(700, 'sha256:a')).toThrow(VerificationError);
  });
});

describe('readTar on damaged input', () => {
  /** A small deterministic generator, so a failure can be replayed. */
  function random(seed: number) {
    let state = seed >>> 0;
    return (n: number) => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % n;
    };
  }

  /** Offsets of the header blocks (including extension headers) of a well-formed archive. */
  function headerOffsets(tar: Buffer): number[] {
    const offsets: number[] = [];
    for (let at = 0; at + 512 <= tar.length; ) {
      if (tar.subarray(at, at + 512).every((b) => b === 0)) break;
      offsets.push(at);
      const size = Number.parseInt(tar.toString('latin1', at + 124, at + 136).replace(/\0.*$/s, ''), 8) || 0;
      const typeflag = String.fromCharCode(tar[at + 156]!);
      const hasBody = 'xgLK0\u00007'.includes(typeflag);
      at += 512 + (hasBody ? Math.ceil(size / 512) * 512 : 0);
    }
    return offsets;
  }

  function resum(header: Buffer): void {
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  }

  it('either reads every byte back or throws a VerificationError, never anything else', async () => {
    const next = random(20261123);
    for (const format of ['posix', 'gnu']) {
      const tar = tars[format]!;
      const offsets = headerOffsets(tar);
      expect(offsets.length).toBeGreaterThan(5);
      let refused = 0;
      for (let round = 0; round < 150; round++) {
        const damaged = Buffer.from(tar);
        const at = offsets[next(offsets.length)]!;
        const header = damaged.subarray(at, at + 512);
        for (let i = 1 + next(4); i > 0; i--) header[next(512)] = next(256);
        // Most rounds keep the checksum right, so the damage reaches the fields behind it.
        if (next(4) > 0) resum(header);
        const input = next(3) === 0 ? damaged.subarray(0, next(damaged.length)) : damaged;
        try {
          const { bytes } = await read(input, 1 + next(8192));
          expect(bytes.equals(input), `${format} round ${round}`).toBe(true);
        } catch (error) {
          expect(error, `${format} round ${round}: ${(error as Error).message}`).toBeInstanceOf(
            VerificationError,
          );
          refused++;
        }
      }
      expect(refused).toBeGreaterThan(10);
    }
  });
});
