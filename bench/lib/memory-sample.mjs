// Samples a skiff process's memory (docs/memory.md "How to measure again"). Preload it:
//   MEM_SAMPLE_LOG=FILE NODE_OPTIONS="--import $PWD/bench/lib/memory-sample.mjs" skiff pull …
// Every MEM_SAMPLE_MS (250) ms one JSON line (MiB): rss, the main heap's committed and used size,
// external and arrayBuffers, RssAnon and VmHWM from /proc/self/status, threads; at each new high,
// the anonymous resident memory by kind of mapping from /proc/self/smaps: malloc's main arena
// (`heap`), 256 KiB mappings (V8's pages, `v8pages`), mappings of 1 MiB and more (thread arenas,
// large objects: `big`), other anonymous ones (`small`). The last line is the peak's sample.
// With MEM_SAMPLE_GC=1 and --expose-gc, every 8th sample also forces a full collection and logs
// arrayBuffers before and after it (live or dead?). Not a test; the main thread only.
import fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';

if (isMainThread && process.env.MEM_SAMPLE_LOG) {
  const out = process.env.MEM_SAMPLE_LOG;
  const every = Number(process.env.MEM_SAMPLE_MS ?? 250);
  const started = Date.now();
  const lines = [];
  const MiB = (bytes) => Math.round(bytes / 1048576);
  let peak = { rss: 0 };

  const status = () => {
    const text = fs.readFileSync('/proc/self/status', 'utf8');
    const kB = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
    return {
      anon: Math.round(kB('RssAnon') / 1024),
      hwm: Math.round(kB('VmHWM') / 1024),
      thr: kB('Threads'),
    };
  };

  const mappings = () => {
    const kinds = { heap: 0, v8pages: 0, big: 0, small: 0 };
    let name = '';
    let kB = 0;
    for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const range = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (range) {
        name = range[3];
        kB = (Number.parseInt(range[2], 16) - Number.parseInt(range[1], 16)) / 1024;
      } else if (line.startsWith('Rss:')) {
        const rss = Number(line.split(/\s+/)[1]);
        if (name === '[heap]') kinds.heap += rss;
        else if (name === '') kinds[kB === 256 ? 'v8pages' : kB >= 1024 ? 'big' : 'small'] += rss;
      }
    }
    for (const kind of Object.keys(kinds)) kinds[kind] = Math.round(kinds[kind] / 1024);
    return kinds;
  };

  const sample = () => {
    const m = process.memoryUsage();
    const row = {
      t: ((Date.now() - started) / 1000).toFixed(1),
      rss: MiB(m.rss),
      heapT: MiB(m.heapTotal),
      heapU: MiB(m.heapUsed),
      ext: MiB(m.external),
      ab: MiB(m.arrayBuffers),
      ...status(),
    };
    if (row.rss >= peak.rss) {
      Object.assign(row, mappings());
      peak = row;
    }
    lines.push(JSON.stringify(row));
  };

  let ticks = 0;
  setInterval(() => {
    sample();
    if (process.env.MEM_SAMPLE_GC && globalThis.gc && ++ticks % 8 === 0) {
      const before = process.memoryUsage().arrayBuffers;
      globalThis.gc();
      lines.push(`gc: arrayBuffers ${MiB(before)} -> ${MiB(process.memoryUsage().arrayBuffers)} MiB`);
    }
  }, every).unref();
  process.on('exit', () => {
    sample();
    lines.push(`peak ${JSON.stringify(peak)}`);
    fs.writeFileSync(out, `${lines.join('\n')}\n`);
  });
}
