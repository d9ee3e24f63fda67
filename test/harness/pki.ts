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

/** Runs openssl with the extensions in a file (`-extfile` for x509, `-addext` for req -x509). */
function openssl(args: string[], extensions: string[], dir: string): void {
  const extra: string[] = [];
  if (extensions.length > 0) {
    const extFile = path.join(dir, `ext-${process.hrtime.bigint()}.cnf`);
    fs.writeFileSync(extFile, `${extensions.join('\n')}\n`);
    extra.push(...(args[0] === 'x509' ? ['-extfile', extFile] : extensions.flatMap((e) => ['-addext', e])));
  }
  execFileSync('openssl', [...args, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
}
