/**
 * One budget of connections per registry host for a whole run (docs/network.md "Connections"):
 * every HTTP request holds one of the host's connections from the moment it is sent until its
 * response body has ended, so a run never has more than `perRegistry` requests in flight to one
 * host, however many images (`--jobs`) and blobs (`--blob-jobs`) it works on at once.
 *
 * A blob copied between registries needs two connections at once: its source GET streams into its
 * destination upload. Taking them one by one could deadlock (every connection held by a GET that
 * waits for an upload's), so a copy first takes a *lease*: one connection to the destination that
 * its upload requests (POST, PATCH, PUT) use in turn. Leases may hold at most `perRegistry - 1`
 * connections of a host, so one is always left for what leases wait for (their source GETs) and for
 * short requests (manifests, HEADs, tokens), none of which waits for anything while it holds one.
 *
 * Who gets a connection that frees: first requests made inside a lease (they finish copies that
 * already hold a connection), then other requests in the order they asked, then leases, largest
 * blob first: a long list of small images does not keep a large blob waiting.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export const DEFAULT_CONNECTIONS = 8;
/** A lease and the GET that feeds it need two connections; fewer could never copy a blob. */
export const MIN_CONNECTIONS = 2;

export type Release = () => void;

interface Waiter {
  /** 0: a request inside a lease; 1: any other request; 2: a lease. Lower goes first. */
  tier: 0 | 1 | 2;
  /** Bytes of the blob it moves; larger goes first within a tier. */
  bytes: number;
  order: number;
  grant(): void;
}

interface HostState {
  busy: number;
  leased: number;
  waiting: Waiter[];
}

interface Lease {
  budget: ConnectionBudget;
  host: string;
  bytes: number;
  inUse: boolean;
}

const currentLease = new AsyncLocalStorage<Lease>();

export class ConnectionBudget {
  private readonly hosts = new Map<string, HostState>();
  private order = 0;

  constructor(readonly perRegistry: number = DEFAULT_CONNECTIONS) {
    if (!Number.isInteger(perRegistry) || perRegistry < MIN_CONNECTIONS)
      throw new RangeError(`connections per registry must be an integer ≥ ${MIN_CONNECTIONS}`);
  }

  /**
   * A connection to `host` for one request, held until the returned function is called. Inside a
   * lease on `host` the lease's own connection is used when it is free.
   */
  async connection(host: string, signal?: AbortSignal): Promise<Release> {
    const lease = currentLease.getStore();
    if (lease?.budget === this && lease.host === host && !lease.inUse) {
      lease.inUse = true;
      return once(() => {
        lease.inUse = false;
      });
    }
    const inLease = lease?.budget === this;
    return this.take(host, inLease ? 0 : 1, inLease ? lease.bytes : 0, signal);
  }

  /**
   * Runs one blob transfer of `bytes` holding a connection to the destination `host` for its
   * uploads (no lease when the destination is not a registry: `host` undefined).
   */
  async transfer<T>(
    host: string | undefined,
    bytes: number,
    run: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    if (host === undefined) return run();
    const release = await this.take(host, 2, bytes, signal);
    try {
      return await currentLease.run({ budget: this, host, bytes, inUse: false }, run);
    } finally {
      release();
    }
  }

  /** Requests in flight to `host` (leases count as one each while held). */
  inFlight(host: string): number {
    return this.hosts.get(host)?.busy ?? 0;
  }

  private take(host: string, tier: Waiter['tier'], bytes: number, signal?: AbortSignal): Promise<Release> {
    signal?.throwIfAborted();
    const state = this.state(host);
    return new Promise<Release>((resolve, reject) => {
      const lease = tier === 2;
      const waiter: Waiter = {
        tier,
        bytes,
        order: this.order++,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          state.busy++;
          if (lease) state.leased++;
          resolve(
            once(() => {
              state.busy--;
              if (lease) state.leased--;
              this.grant(state);
            }),
          );
        },
      };
      const onAbort = () => {
        state.waiting.splice(state.waiting.indexOf(waiter), 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      state.waiting.push(waiter);
      this.grant(state);
    });
  }

  /** Hands free connections to waiters, best first (see the module comment). */
  private grant(state: HostState): void {
    while (state.busy < this.perRegistry) {
      const leasesAllowed = state.leased < this.perRegistry - 1;
      let best = -1;
      for (let i = 0; i < state.waiting.length; i++) {
        const w = state.waiting[i]!;
        if (w.tier === 2 && !leasesAllowed) continue;
        if (best < 0 || before(w, state.waiting[best]!)) best = i;
      }
      if (best < 0) return;
      const [waiter] = state.waiting.splice(best, 1);
      waiter!.grant();
    }
  }

  private state(host: string): HostState {
    let state = this.hosts.get(host);
    if (!state) {
      state = { busy: 0, leased: 0, waiting: [] };
      this.hosts.set(host, state);
    }
    return state;
  }
}

function before(a: Waiter, b: Waiter): boolean {
  if (a.tier !== b.tier) return a.tier < b.tier;
  if (a.bytes !== b.bytes) return a.bytes > b.bytes;
  return a.order < b.order;
}

function once(fn: () => void): Release {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
