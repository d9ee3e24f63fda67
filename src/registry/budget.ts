/**
 * One budget of connections per registry host for a whole run (docs/network.md "Connections"):
 * every HTTP request holds one of the host's connections from the moment it is sent until its
 * response body has ended, so a run never has more than `perRegistry` requests in flight to one
 * host, however many images (`--jobs`) and blobs (`--blob-jobs`) it works on at once.
 *
 * A blob copied to a registry streams its source GET into its destination upload: it holds a
 * connection to each end at once. Taking them one by one could deadlock (every connection held by
 * a GET that waits for an upload's), so a copy first takes a *lease*: a connection to the
 * destination that its upload requests (POST, PATCH, PUT) use in turn, and a second one for its
 * source GET when the source is the same host. Leases hold at most `perRegistry - 1` connections of
 * a host (a lone lease may take them all), so one is left for short requests (manifests, HEADs,
 * tokens), and a source GET on another host waits only for requests that wait for nothing.
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
  /** Connections it takes: 1, or 2 for a lease that also feeds its source GET. */
  units: number;
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
  units: number;
  inUse: number;
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
    if (lease?.budget === this && lease.host === host && lease.inUse < lease.units) {
      lease.inUse++;
      return once(() => {
        lease.inUse--;
      });
    }
    const inLease = lease?.budget === this;
    return this.take(host, inLease ? 0 : 1, 1, inLease ? lease.bytes : 0, signal);
  }

  /**
   * Runs one blob transfer of `bytes` under a lease on the destination `host` (no lease when the
   * destination is not a registry: `host` undefined); `sourceHost` is where its GET goes, if known.
   */
  async transfer<T>(
    host: string | undefined,
    sourceHost: string | undefined,
    bytes: number,
    run: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    if (host === undefined) return run();
    const units = sourceHost === host ? 2 : 1;
    const release = await this.take(host, 2, units, bytes, signal);
    try {
      return await currentLease.run({ budget: this, host, bytes, units, inUse: 0 }, run);
    } finally {
      release();
    }
  }

  /** Connections of `host` taken (a lease counts its connections while held, used or not). */
  inFlight(host: string): number {
    return this.hosts.get(host)?.busy ?? 0;
  }

  private take(
    host: string,
    tier: Waiter['tier'],
    units: number,
    bytes: number,
    signal?: AbortSignal,
  ): Promise<Release> {
    signal?.throwIfAborted();
    const state = this.state(host);
    return new Promise<Release>((resolve, reject) => {
      const lease = tier === 2;
      const waiter: Waiter = {
        tier,
        units,
        bytes,
        order: this.order++,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          state.busy += units;
          if (lease) state.leased += units;
          resolve(
            once(() => {
              state.busy -= units;
              if (lease) state.leased -= units;
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

  /**
   * Hands free connections to waiters, best first (see the module comment). Leases come last, so
   * when the best waiter is a lease that does not fit, no other waiter could be served.
   */
  private grant(state: HostState): void {
    while (state.waiting.length > 0) {
      let best = 0;
      for (let i = 1; i < state.waiting.length; i++)
        if (before(state.waiting[i]!, state.waiting[best]!)) best = i;
      const waiter = state.waiting[best]!;
      if (!this.fits(state, waiter)) return;
      state.waiting.splice(best, 1);
      waiter.grant();
    }
  }

  private fits(state: HostState, waiter: Waiter): boolean {
    if (state.busy + waiter.units > this.perRegistry) return false;
    return waiter.tier !== 2 || state.leased === 0 || state.leased + waiter.units < this.perRegistry;
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
