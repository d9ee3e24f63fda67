/**
 * Deterministic sharding of a mirror list (`--shard I/N`, I from 1 to N).
 *
 * Rule: an expanded item (one source image and its destination) belongs to shard
 * `1 + (H mod N)`, where H is the first 48 bits of sha256(`SOURCE DESTINATION`), both written in
 * their canonical form. The shard depends on the item alone, never on its position or on the other
 * items, so N machines that each expand the list (even if a tag was pushed in between) take every
 * item exactly once without talking to each other, and adding an item moves no other item.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors/index.js';

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index < 1 || index > count)
    throw new UsageError(`--shard ${text}: expected I/N with 1 <= I <= N, e.g. 2/4`);
  return { index, count };
}

export function shardKey(source: string, destination: string): string {
  return `${source} ${destination}`;
}

/** The 1-based shard an item key belongs to. */
export function shardOf(key: string, count: number): number {
  const hash = createHash('sha256').update(key).digest();
  return 1 + (hash.readUIntBE(0, 6) % count);
}

export function inShard(key: string, shard: Shard): boolean {
  return shardOf(key, shard.count) === shard.index;
}

export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}
