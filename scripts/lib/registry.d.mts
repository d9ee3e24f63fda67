export interface RunningRegistry {
  /** host:port, e.g. 127.0.0.1:40123 */
  host: string;
  dataDir: string;
  /** The registry's stderr/stdout, including the access log when enabled. */
  logFile: string;
  stop(): Promise<void>;
}
export interface RegistryOptions {
  /** Accept schema1 manifests (distribution 2.8 refuses them unless told). */
  schema1?: boolean;
  /** htpasswd file content (bcrypt) to require Basic auth with. */
  htpasswd?: string;
  /** Write the access log to logFile (for counting requests). */
  accessLog?: boolean;
  /** Serve HTTPS with these PEM files; with clientCAs, require a client certificate they signed. */
  tls?: { certificate: string; key: string; clientCAs?: string[] };
}
export function freePort(): Promise<number>;
export function startRegistry(options?: RegistryOptions): Promise<RunningRegistry>;
