import { Args, Flags } from '@oclif/core';
import { jsonFlag, SkiffCommand, verboseFlag } from '../src/cli/base.js';
import { canPrompt, readLine, readSecret } from '../src/cli/prompt.js';
import { registryClient, registryFlags } from '../src/cli/registry-flags.js';
import { UsageError } from '../src/errors/index.js';
import { authFileForWriting, authKey, saveLogin } from '../src/registry/auth-file.js';
import { checkCredentials } from '../src/registry/login.js';

const { creds: _creds, ...connectionFlags } = registryFlags;

export default class Login extends SkiffCommand {
  static override summary =
    'Log in to a registry: check the credentials there, then save them in the auth file.';
  static override description =
    `As podman login: the credentials are checked against the registry (its /v2/ challenge, and the token server its Bearer challenge names) before they are saved, in --authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json (~/.config/containers/auth.json where that cannot be made), with mode 0600, replaced atomically, other entries kept. pull, mirror and inspect read them from there.

The password comes from --password-stdin, -p, or a prompt without echo on a terminal; it is never printed. Exit codes: 0 saved, 1 usage, 2 the registry refused the credentials, 5 network failure.`;

  static override examples = [
    '<%= config.bin %> login -u alice quay.io',
    'printf %s "$TOKEN" | <%= config.bin %> login -u bot --password-stdin registry.example:5000',
  ];

  static override baseFlags = { json: jsonFlag, verbose: verboseFlag };

  static override args = {
    registry: Args.string({
      description: 'registry HOST[:PORT], or HOST/NAMESPACE for credentials of a namespace',
      required: true,
    }),
  };

  static override flags = {
    ...connectionFlags,
    username: Flags.string({ char: 'u', description: 'user name (asked for on a terminal if omitted)' }),
    password: Flags.string({
      char: 'p',
      description: 'password (visible to other users in the process list: prefer --password-stdin)',
    }),
    'password-stdin': Flags.boolean({ description: 'read the password from standard input', default: false }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Login);
    const key = authKey(args.registry);
    if (flags.password !== undefined && flags['password-stdin'])
      throw new UsageError('give the password by -p or by --password-stdin, not both');
    const username = flags.username ?? (await askUsername());
    if (!username) throw new UsageError('login needs a user name (-u USERNAME)');
    if (username.includes(':')) throw new UsageError('a user name may not contain ":"');
    if (flags.password !== undefined)
      process.stderr.write(
        'skiff: warning: a password given by -p is visible to other users; prefer --password-stdin\n',
      );
    const password =
      flags.password ?? (flags['password-stdin'] ? await readStdin() : await askPassword(username));
    if (!password) throw new UsageError(`no password given for ${username}`);
    const client = await registryClient({ ...flags, creds: `${username}:${password}` });
    try {
      await checkCredentials(client, key);
    } finally {
      await client.close();
    }
    const file = await authFileForWriting({ authFile: flags.authfile });
    await saveLogin(file, key, username, password);
    if (flags.json) this.printJson({ registry: key, username, authFile: file });
    else process.stdout.write('Login Succeeded!\n');
  }
}

async function askUsername(): Promise<string> {
  if (!canPrompt()) throw new UsageError('login needs -u USERNAME when there is no terminal to ask on');
  return readLine('Username: ');
}

async function askPassword(username: string): Promise<string> {
  if (!canPrompt())
    throw new UsageError(
      `no password for ${username} and no terminal to ask on: give --password-stdin (or -p)`,
    );
  return readSecret('Password: ');
}

/** The whole of standard input, less one trailing line break (as podman reads it). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
