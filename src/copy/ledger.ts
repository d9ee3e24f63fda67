/**
 * The run-wide record of blobs placed at registry destinations, so that within one `mirror --file`
 * run a blob crosses the wire once: an item that needs a blob another item has placed (or is
 * placing) in the same repository waits for it and skips it; one that needs it in another
 * repository of the same registry mounts it from there. Items run in parallel, so without this
 * record each would ask the registry before any had uploaded, and all would upload.
 */
import type { Digest } from '../digest/index.js';
import type { RegistryReference } from '../reference/index.js';

interface Placement {
  where: RegistryReference;
  /** Settles true once the blob is at `where`, false if placing it failed. */
  done: Promise<boolean>;
  placed: boolean;
}

export class BlobLedger {
  /** By registry endpoint, then digest: every repository the blob is (being) placed in. */
  private readonly byRegistry = new Map<string, Map<Digest, Placement[]>>();
  /** By repository and digest: the latest PUT of that manifest this run; settles true once it is there. */
  private readonly manifests = new Map<string, Promise<boolean>>();

  /**
   * PUTs manifest `digest` into `where`'s repository through `put`, one PUT of a digest at a time:
   * the registry rewrites a manifest's files on every PUT (truncate, then write), and a concurrent
   * PUT of an index that reads them meanwhile is refused (400 DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN).
   * An untagged PUT (an index's child) that another item of the run has made is skipped; a tagged
   * one waits for it and then PUTs its tag. Resolves whether this call PUT the manifest.
   */
  async putManifest(
    where: RegistryReference,
    digest: Digest,
    tagged: boolean,
    put: () => Promise<void>,
  ): Promise<boolean> {
    const key = `${where.endpoint}/${where.repository}@${digest}`;
    // Claimed in one synchronous step: each PUT waits only for the one claimed before it.
    const earlier = this.manifests.get(key);
    let settle!: (placed: boolean) => void;
    this.manifests.set(
      key,
      new Promise((resolve) => {
        settle = resolve;
      }),
    );
    let placed = false;
    try {
      placed = (await earlier) ?? false;
      if (placed && !tagged) return false;
      await put();
      placed = true;
      return true;
    } finally {
      settle(placed);
    }
  }

  /** The placement of `digest` in `where`'s repository this run, finished or in progress. */
  placement(where: RegistryReference, digest: Digest): Promise<boolean> | undefined {
    return this.placements(where, digest).find((p) => p.where.repository === where.repository)?.done;
  }

  /**
   * Another repository of `where`'s registry this run has placed `digest` in, to mount it from;
   * a placement still on its way is waited for (mounting after it beats uploading beside it).
   * Call it right after `begin`, with no await between: an item then waits only for placements
   * begun before its own, so the waits cannot form a cycle.
   */
  async mountSource(where: RegistryReference, digest: Digest): Promise<RegistryReference | undefined> {
    const others = this.placements(where, digest).filter((p) => p.where.repository !== where.repository);
    for (const other of others) if (await other.done) return other.where;
    return undefined;
  }

  /** Records that `digest` is being placed in `where`; call `settle` with the outcome. */
  begin(where: RegistryReference, digest: Digest): (placed: boolean) => void {
    let settle!: (placed: boolean) => void;
    const placement: Placement = {
      where,
      placed: false,
      done: new Promise((resolve) => {
        settle = resolve;
      }),
    };
    const list = this.placements(where, digest);
    // A failed earlier attempt gives way to this one.
    const kept = list.filter((p) => p.where.repository !== where.repository);
    this.registry(where).set(digest, [...kept, placement]);
    return (placed) => {
      placement.placed = placed;
      if (!placed) {
        const now = this.placements(where, digest).filter((p) => p !== placement);
        this.registry(where).set(digest, now);
      }
      settle(placed);
    };
  }

  private registry(where: RegistryReference): Map<Digest, Placement[]> {
    let map = this.byRegistry.get(where.endpoint);
    if (!map) {
      map = new Map();
      this.byRegistry.set(where.endpoint, map);
    }
    return map;
  }

  private placements(where: RegistryReference, digest: Digest): Placement[] {
    return this.registry(where).get(digest) ?? [];
  }
}
