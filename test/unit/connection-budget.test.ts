// Issue 15 item 5: the run's connections per registry host (src/registry/budget.ts).
import { describe, expect, it } from 'vitest';
import { ConnectionBudget, type Release } from '../../src/registry/budget.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Records the order in which waiters were granted. */
function tracker() {
  const granted: string[] = [];
  const releases = new Map<string, Release>();
  const track = (name: string, taken: Promise<Release>) =>
    taken.then((release) => {
      granted.push(name);
      releases.set(name, release);
    });
  return { granted, releases, track };
}

describe('ConnectionBudget', () => {
  it('never lets more requests than the budget be in flight to one host; other hosts are apart', async () => {
    const budget = new ConnectionBudget(3);
    const { granted, releases, track } = tracker();
    for (let i = 0; i < 6; i++) void track(`a${i}`, budget.connection('a:5000'));
    void track('b0', budget.connection('b:5000'));
    await tick();
    expect(granted).toEqual(['a0', 'a1', 'a2', 'b0']);
    expect(budget.inFlight('a:5000')).toBe(3);
    releases.get('a1')!();
    releases.get('a1')!(); // a second release of the same connection frees nothing more
    await tick();
    expect(granted).toEqual(['a0', 'a1', 'a2', 'b0', 'a3']);
    expect(budget.inFlight('a:5000')).toBe(3);
  });

  it('gives a freed connection to the largest waiting blob transfer, not to the first that asked', async () => {
    const budget = new ConnectionBudget(2);
    const { granted, releases, track } = tracker();
    await track('first', budget.connection('h'));
    await track('second', budget.connection('h'));
    const transfers = [
      ['small-1', 1_000],
      ['small-2', 2_000],
      ['large', 500_000_000],
      ['small-3', 3_000],
    ] as const;
    for (const [name, bytes] of transfers)
      void budget.transfer('h', undefined, bytes, () => {
        granted.push(name);
        return new Promise<void>(() => undefined);
      });
    await tick();
    releases.get('first')!();
    await tick();
    expect(granted).toEqual(['first', 'second', 'large']);
  });

  it('keeps one connection out of leases, so a transfer holding one can always open its source', async () => {
    const budget = new ConnectionBudget(3);
    const gets: string[] = [];
    const transfer = (name: string) =>
      budget.transfer('h', undefined, 100, async () => {
        // The source GET on the same host, taken while the lease is held, then the upload on the lease.
        const get = await budget.connection('h');
        gets.push(name);
        const upload = await budget.connection('h');
        await tick();
        upload();
        get();
      });
    // Three transfers at once on a budget of three: leases take two, the third waits for one.
    await Promise.all([transfer('t1'), transfer('t2'), transfer('t3')]);
    expect(gets.sort()).toEqual(['t1', 't2', 't3']);
    expect(budget.inFlight('h')).toBe(0);
  });

  it('lets requests inside a lease go before other waiters: they finish what already holds a connection', async () => {
    const budget = new ConnectionBudget(2);
    const { granted, releases, track } = tracker();
    await track('other', budget.connection('h'));
    let leaseHeld!: () => void;
    const held = new Promise<void>((resolve) => {
      leaseHeld = resolve;
    });
    let go!: () => void;
    const ready = new Promise<void>((resolve) => {
      go = resolve;
    });
    const done = budget.transfer('h', undefined, 10, async () => {
      const upload = await budget.connection('h'); // the lease's own connection
      granted.push('upload');
      leaseHeld();
      await ready;
      await track('lease-get', budget.connection('h')); // both connections are held: it waits
      upload();
      releases.get('lease-get')!();
    });
    await held;
    void track('outside', budget.connection('h')); // asks first, outside the lease
    go();
    await tick();
    expect(granted).toEqual(['other', 'upload']);
    releases.get('other')!();
    await done;
    await tick();
    expect(granted).toEqual(['other', 'upload', 'lease-get', 'outside']);
  });

  it('leases two connections when source and destination are one host: GET and upload never wait', async () => {
    const budget = new ConnectionBudget(2);
    const taken: string[] = [];
    await budget.transfer('h', 'h', 100, async () => {
      const get = await budget.connection('h');
      taken.push('get');
      const upload = await budget.connection('h');
      taken.push('upload');
      expect(budget.inFlight('h')).toBe(2);
      upload();
      get();
    });
    expect(taken).toEqual(['get', 'upload']);
    expect(budget.inFlight('h')).toBe(0);
  });

  it('refuses a budget that could never copy a blob', () => {
    expect(() => new ConnectionBudget(1)).toThrow(/≥ 2/);
  });
});
