/**
 * What one mirror run learns about its source registries while carrying referrers, so that an image
 * with no signatures costs no request of its own: each source repository's tag list is read once
 * (one paginated GET instead of a HEAD per cosign tag per image), and a registry that answered 404
 * to the referrers API is not asked again. A re-run of a list up to date then asks the source only
 * the image's manifest HEAD per item, plus one tag list per repository and one referrers probe per
 * registry.
 *
 * The tag list is a snapshot taken when a repository is first carried from: a signature pushed to
 * the source during the run is carried by the next run. A registry that refuses to list tags is
 * asked by HEAD per tag, as before.
 *
 * The same list says when an index's manifests need not be read at all: at a registry without the
 * referrers API, a referrer of a manifest is a tag named after its digest, so a list with no such
 * tag for a digest the carry has not seen holds no referrer of any platform's manifest. And an
 * index's manifests, once known, are known by its digest for the rest of the run (two tags of one
 * multi-arch image read them once).
 */
import type { Digest } from '../digest/index.js';
import type { Descriptor } from '../manifest/index.js';
import type { RegistryReference } from '../reference/index.js';
import type { RegistryClient, RepositoryLocation } from '../registry/client.js';
import { listTags } from '../registry/push.js';
import { referrers } from '../trust/signatures.js';

export class ReferrerLookups {
  private readonly tagLists = new Map<string, Promise<ReadonlySet<string> | undefined>>();
  private readonly withoutApi = new Set<string>();
  /** By index digest: the digests of its manifests. */
  private readonly indexes = new Map<Digest, Promise<readonly Digest[]>>();
  /** Per registry, the first referrers API request, until it is answered. */
  private readonly probes = new Map<string, Promise<void>>();

  /** The repository's tags, listed once per run; undefined when the registry will not list them. */
  tags(client: RegistryClient, location: RepositoryLocation): Promise<ReadonlySet<string> | undefined> {
    const key = `${location.endpoint}/${location.repository}`;
    let listed = this.tagLists.get(key);
    if (!listed) {
      listed = listTags(client, location).then(
        (tags) => new Set(tags),
        () => undefined,
      );
      this.tagLists.set(key, listed);
    }
    return listed;
  }

  /**
   * What refers to `subject` at a source registry. Until its registry has answered one referrers
   * API request, others wait for that answer: images carried at once ask it once, not each.
   */
  async referrers(
    client: RegistryClient,
    ref: RegistryReference,
    subject: Digest,
    signal?: AbortSignal,
  ): Promise<Descriptor[]> {
    const tags = await this.tags(client, { endpoint: ref.endpoint, repository: ref.repository });
    const probe = this.probes.get(ref.endpoint);
    if (probe) await probe;
    const found = referrers(client, ref, subject, signal, {
      noApi: this.withoutApi.has(ref.endpoint),
      tags,
      onNoApi: () => this.withoutApi.add(ref.endpoint),
    });
    if (!probe)
      this.probes.set(
        ref.endpoint,
        found.then(
          () => undefined,
          () => undefined,
        ),
      );
    return found;
  }

  /**
   * Whether the source repository of `ref` holds no referrer of any manifest but those in `known`,
   * as far as this run can tell without reading one: its registry said it has no referrers API, and
   * its tag list names no cosign or referrers tag (`sha256-<hex>[.sig|.att|.sbom]`) of another
   * digest. False whenever either is unknown.
   */
  async noReferrersBeyond(
    client: RegistryClient,
    ref: RegistryReference,
    known: ReadonlySet<Digest>,
  ): Promise<boolean> {
    if (!this.withoutApi.has(ref.endpoint)) return false;
    const tags = await this.tags(client, { endpoint: ref.endpoint, repository: ref.repository });
    if (!tags) return false;
    for (const tag of tags) {
      const named = REFERRER_TAG.exec(tag);
      if (named && !known.has(`sha256:${named[1]}` as Digest)) return false;
    }
    return true;
  }

  /** The manifests of index `digest`: `read` once per run, whichever item asks first. */
  children(digest: Digest, read: () => Promise<readonly Digest[]>): Promise<readonly Digest[]> {
    let known = this.indexes.get(digest);
    if (!known) {
      known = read();
      this.indexes.set(digest, known);
      known.catch(() => this.indexes.delete(digest));
    }
    return known;
  }
}

/** A tag named after the manifest it belongs to: cosign's and the referrers tag schema's. */
const REFERRER_TAG = /^sha256-([0-9a-f]{64})/;
