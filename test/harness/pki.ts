// A private certificate authority made with openssl for the TLS tests: a CA, server certificates
// for given names, client certificates. EC P-256 keys: fast to make.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Issued {
  cert: string;
  key: string;
}

export class TestCa {
  readonly cert: string;
  readonly key: string;

  constructor(
    readonly dir: string,
    readonly name = 'ca',
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.cert = path.join(dir, `${name}.pem`);
    this.key = path.join(dir, `${name}-key.pem`);
    openssl(
      [
        'req',
        '-x509',
        ...newKey(this.key),
        '-out',
        this.cert,
        '-days',
        '2',
        '-subj',
        `/CN=skiff test ${name}`,
      ],
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
  }

  /** A server certificate for DNS names and IP addresses (`IP:127.0.0.1`). */
  server(file: string, names: string[]): Issued {
    const san = names.map((n) => (n.startsWith('IP:') ? n : `DNS:${n}`)).join(',');
    return this.issue(file, names[0]!, [`subjectAltName=${san}`, 'extendedKeyUsage=serverAuth']);
  }

  /** A server certificate that expired in 2020 (`openssl ca` takes dates in the past). */
  expiredServer(file: string, names: string[]): Issued {
    const key = path.join(this.dir, `${file}-key.pem`);
    const csr = path.join(this.dir, `${file}.csr`);
    const cert = path.join(this.dir, `${file}.pem`);
    openssl(['req', ...newKey(key), '-out', csr, '-subj', `/CN=${names[0]}`], [], this.dir);
    const config = path.join(this.dir, `${file}-ca.cnf`);
    fs.writeFileSync(path.join(this.dir, `${file}-index.txt`), '');
    fs.writeFileSync(path.join(this.dir, `${file}-serial.txt`), '01\n');
    fs.writeFileSync(
      config,
      [
        '[ca]',
        'default_ca = dated',
        '[dated]',
        `database = ${path.join(this.dir, `${file}-index.txt`)}`,
        `new_certs_dir = ${this.dir}`,
        `serial = ${path.join(this.dir, `${file}-serial.txt`)}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        '[any]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    const dates = ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'];
    openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-config',
        config,
        '-cert',
        this.cert,
        '-keyfile',
        this.key,
        '-in',
        csr,
        '-out',
        cert,
        ...dates,
      ],
      [`subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`],
      this.dir,
    );
    return { cert, key };
  }

  client(file: string): Issued {
    return this.issue(file, 'skiff test client', ['extendedKeyUsage=clientAuth']);
  }

  private issue(file: string, commonName: string, extensions: string[]): Issued {
    const key = path.join(this.dir, `${file}-key.pem`);
    const csr = path.join(this.dir, `${file}.csr`);
    const cert = path.join(this.dir, `${file}.pem`);
    openssl(['req', ...newKey(key), '-out', csr, '-subj', `/CN=${commonName}`], [], this.dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        this.cert,
        '-CAkey',
        this.key,
        '-CAcreateserial',
        '-out',
        cert,
        '-days',
        '2',
      ],
      extensions,
      this.dir,
    );
    return { cert, key };
  }
}

function newKey(keyFile: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile];
}

/** Runs openssl with the extensions in a file (`-extfile` for x509 and ca, `-addext` for req -x509). */
function openssl(args: string[], extensions: string[], dir: string): void {
  const extra: string[] = [];
  if (extensions.length > 0) {
    const extFile = path.join(dir, `ext-${process.hrtime.bigint()}.cnf`);
    fs.writeFileSync(extFile, `${extensions.join('\n')}\n`);
    const inFile = args[0] === 'x509' || args[0] === 'ca';
    extra.push(...(inFile ? ['-extfile', extFile] : extensions.flatMap((e) => ['-addext', e])));
  }
  execFileSync('openssl', [...args, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
}
