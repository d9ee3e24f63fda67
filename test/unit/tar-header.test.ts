import { describe, expect, it } from 'vitest';
import { VerificationError } from '../../src/errors/index.js';
import { type TarToken, TarTokenizer } from '../../src/formats/tar.js';
import { GoHeaderReader } from '../../src/formats/tar-go-header.js';
import {
  BLOCK,
  checkChecksum,
  checksums,
  FIELD,
  fieldText,
  gnuLongRecord,
  headerPath,
  parsePax,
  paxExtension,
  paxRecord,
  readNumber,
  writeChecksum,
  writeHeader,
  writeNumber,
} from '../../src/formats/tar-header.js';

const GiB = 1024 ** 3;

/** The entries skiff's tar reader sees in these bytes. */
function entries(bytes: Buffer): Array<Extract<TarToken, { kind: 'entry' }>['entry']> {
  const tokens = new TarTokenizer().push(bytes);
  return tokens.flatMap((t) => (t.kind === 'entry' ? [t.entry] : []));
}

/** A header block with one numeric field spelled as given, checksum fixed up. */
function spelled(field: keyof typeof FIELD, text: string | Buffer): Buffer {
  const block = writeHeader({ name: 'f', typeflag: '5', mode: 0o755, size: 0, mtime: 0 });
  const [start, length] = FIELD[field];
  block.fill(0, start, start + length);
  Buffer.from(text as string, 'latin1').copy(block, start);
  writeChecksum(block);
  return block;
}

describe('tar header numbers', () => {
  it('round-trip in octal while they fit, and in base-256 from 8 GiB on', () => {
    for (const size of [0, 1, 511, 8 ** 11 - 1, 8 * GiB, 8 * GiB + 1, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const block = writeHeader({ name: 'big', size });
      expect(readNumber(block, 'size')).toBe(size);
      expect(block[FIELD.size[0]]! & 0x80, `size ${size}`).toBe(size >= 8 ** 11 ? 0x80 : 0);
    }
    // ids over 2097151 do not fit seven octal digits either
    const ids = writeHeader({ name: 'x', uid: 3_000_000, gid: 0o7777777 });
    expect([readNumber(ids, 'uid'), readNumber(ids, 'gid')]).toEqual([3_000_000, 0o7777777]);
    expect(() => writeNumber(Buffer.alloc(BLOCK), 'size', -1)).toThrow(/non-negative/);
  });

  it("are read as Go's archive/tar reads them: spaces and NULs around the digits, a NUL ending them", () => {
    for (const [text, value] of [
      ['0000644\0', 0o644],
      ['    644 ', 0o644],
      ['\x00\x00\x00\x00644', 0o644],
      ['644\0junk', 0o644],
      ['644 \0 \0', 0o644],
      ['', 0],
      ['\x00'.repeat(8), 0],
    ] as const) {
      expect(readNumber(spelled('mode', text), 'mode'), JSON.stringify(text)).toBe(value);
    }
    for (const text of ['6 44', '644x', '\t644', '644 \0 5', '9']) {
      expect(() => readNumber(spelled('mode', text), 'mode', 1024), JSON.stringify(text)).toThrow(
        /bad mode .* at offset 1024/,
      );
    }
  });

  it('reads negative base-256 numbers, and refuses ones past 2^53', () => {
    const minusOne = Buffer.alloc(12, 0xff);
    expect(readNumber(spelled('mtime', minusOne), 'mtime')).toBe(-1);
    const huge = Buffer.alloc(12, 0);
    huge[0] = 0x80;
    huge[4] = 1; // 2^56
    expect(() => readNumber(spelled('size', huge), 'size')).toThrow(/too large/);
  });

  it('a size written with leading NULs is the size Go reads, not 0 (the content is not a header)', () => {
    // Go trims NULs before the digits; a reader that stopped at the first NUL would take this
    // entry's 5 content bytes for the next header, and the two would see different archives.
    const header = writeHeader({ name: 'f', size: 5 });
    header.fill(0, 124, 136);
    header.write(`${'\x00'.repeat(8)}5`, 124, 'latin1');
    writeChecksum(header);
    const content = Buffer.concat([Buffer.from('hello'), Buffer.alloc(BLOCK - 5)]);
    expect(entries(Buffer.concat([header, content]))).toMatchObject([{ name: 'f', size: 5 }]);
  });
});

describe('tar header checksum', () => {
  it('accepts what writeHeader writes and the signed sum of old tars, and refuses anything else', () => {
    const block = writeHeader({ name: 'caf\u00e9', size: 3 });
    expect(() => checkChecksum(block)).not.toThrow();
    const { unsigned, signed } = checksums(block);
    expect(signed).toBeLessThan(unsigned);
    block.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(() => checkChecksum(block)).not.toThrow();
    block[0] = 0x41; // the name changes, the sum does not
    expect(() => checkChecksum(block, 512)).toThrow(/corrupt tar header at offset 512 \(checksum mismatch\)/);
    expect(() => checkChecksum(block)).toThrow(VerificationError);
  });
});

describe('PAX records', () => {
  it('round-trip, non-ASCII keys and binary values included, lengths across a digit boundary', () => {
    const records: Array<[string, Buffer]> = [
      ['path', Buffer.from('r\u00e9pertoire/\u65e5\u672c\u8a9e/'.repeat(20))],
      ['SCHILY.xattr.user.\u00e9t\u00e9', Buffer.from([0, 1, 0xff, 0x0a, 0x3d])],
      ['mtime', Buffer.from('1700000000.123456789')],
      ['a', Buffer.from('')],
    ];
    // Records of 9 and 11 bytes (none can be 10): the length prefix counts its own digits.
    for (const value of ['xxxx', 'xxxxx']) records.push([`k${value.length}`, Buffer.from(value)]);
    const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
    expect(paxRecord('k', 'xxxx').toString()).toBe('9 k=xxxx\n');
    expect(paxRecord('k', 'xxxxx').toString()).toBe('11 k=xxxxx\n');
    expect([...parsePax(Buffer.concat([body, Buffer.alloc(100)]))]).toEqual(records);
  });

  it('lets a later record replace an earlier one, and refuses malformed ones', () => {
    const twice = Buffer.concat([paxRecord('uid', '1'), paxRecord('uid', '2')]);
    expect(parsePax(twice).get('uid')?.toString()).toBe('2');
    for (const bad of ['5 a=b', '6 a=bc', 'x a=b\n', '7 ab=c\n'.replace('=', ':'), '06 =b\n', '99 a=b\n']) {
      expect(() => parsePax(Buffer.from(bad), 1536), JSON.stringify(bad)).toThrow(
        /malformed PAX .* near offset 1536/,
      );
    }
  });

  it('reach the entry after them through the tar reader and the Go header reader alike', () => {
    const name = `d\u00e9j\u00e0/${'n'.repeat(200)}`;
    const header = writeHeader({ name: 'short', size: 0, mtime: 5 });
    const tar = Buffer.concat([
      paxExtension([
        ['path', name],
        ['mtime', '1700000000.5'],
      ]),
      header,
    ]);
    expect(entries(tar)).toMatchObject([{ name, mtime: 1_700_000_000.5 }]);
    const go = new GoHeaderReader();
    go.extension(tar.subarray(0, tar.length - BLOCK));
    expect(go.header(header)).toMatchObject({
      name: Buffer.from(name),
      modTime: { seconds: 1_700_000_000, nanos: 5e8 },
    });
  });
});

describe('GNU long names and links, and ustar names', () => {
  it('carry names and links over 100 bytes', () => {
    const name = `${'long/'.repeat(40)}file`;
    const link = `${'target/'.repeat(30)}x`;
    const tar = Buffer.concat([
      gnuLongRecord('L', name),
      gnuLongRecord('K', link),
      writeHeader({ name: name.slice(0, 100), typeflag: '2', linkname: link.slice(0, 100) }),
    ]);
    expect(entries(tar)).toMatchObject([{ name, linkname: link, type: 'symlink' }]);
  });

  it('refuse to write a name that does not fit, rather than cut it', () => {
    expect(() => writeHeader({ name: 'x'.repeat(101) })).toThrow(/longer than 100 bytes/);
    expect(() => writeHeader({ name: '\u00e9'.repeat(51) })).toThrow(/longer than 100 bytes/);
    expect(fieldText(writeHeader({ name: '\u00e9'.repeat(50) }), 'name')).toBe('\u00e9'.repeat(50));
  });

  it('join the ustar prefix, and the shorter star prefix, to the name', () => {
    const ustar = writeHeader({ name: 'file' });
    ustar.write('some/dir', FIELD.prefix[0], 'latin1');
    expect(headerPath(ustar).toString()).toBe('some/dir/file');
    // star: the prefix ends where its access time begins; the times are not part of the name.
    const star = Buffer.from(ustar);
    star.write('00000000001\0', FIELD.starAtime[0], 'latin1');
    star.write('tar\0', 508, 'latin1');
    writeChecksum(star);
    expect(headerPath(star).toString()).toBe('some/dir/file');
    expect(entries(Buffer.concat([star]))).toMatchObject([{ name: 'some/dir/file' }]);
  });
});
