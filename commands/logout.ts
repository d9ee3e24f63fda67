import { Args, Flags } from '@oclif/core';
import { jsonFlag, SkiffCommand, verboseFlag } from '../src/cli/base.js';
import { UsageError } from '../src/errors/index.js';
import { authFileForWriting, authKey, removeAllLogins, removeLogin } from '../src/registry/auth-file.js';

export default class Logout extends SkiffCommand {
  static override summary = 'Remove the credentials skiff login saved for a registry, or all of them.';
  static override description =
    "As podman logout: the entry for REGISTRY (as it was given to login) is removed from the auth file login writes (--authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json), the file replaced atomically and its other entries kept. --all removes every entry. Credentials in ~/.docker/config.json are docker's: use docker logout.";

  static override examples = ['<%= config.bin %> logout quay.io', '<%= config.bin %> logout --all'];

  static override baseFlags = { json: jsonFlag, verbose: verboseFlag };

  static override args = {
    registry: Args.string({ description: 'registry HOST[:PORT][/NAMESPACE] as given to login' }),
  };

  static override flags = {
    all: Flags.boolean({
      char: 'a',
      description: 'remove the credentials of every registry',
      default: false,
    }),
    authfile: Flags.string({ description: 'auth file to use instead of $REGISTRY_AUTH_FILE' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Logout);
    if (flags.all === (args.registry !== undefined))
      throw new UsageError('logout needs a REGISTRY or --all (not both)');
    const file = await authFileForWriting({ authFile: flags.authfile });
    if (flags.all) {
      const removed = await removeAllLogins(file);
      if (flags.json) this.printJson({ removed, authFile: file });
      else process.stdout.write(`Removed login credentials for all registries (${removed} in ${file})\n`);
      return;
    }
    const key = authKey(args.registry!);
    if (!(await removeLogin(file, key)))
      throw new UsageError(`not logged in to ${key}: ${file} holds no credentials for it`);
    if (flags.json) this.printJson({ removed: 1, registry: key, authFile: file });
    else process.stdout.write(`Removed login credentials for ${key}\n`);
  }
}
