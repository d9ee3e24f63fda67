/**
 * What a person (or a program) sees while skiff transfers: `--progress=auto|tty|plain|ndjson|none`
 * (docs/cli.md). Pull reports one operation per layer, mirror one per image; each view renders the
 * same operations:
 * - tty: a live block of bars on stderr, redrawn at most 10 times a second, cleared before the
 *   command prints its result, so the final screen holds the result only;
 * - plain: for logs (CI), a line per operation at most every $SKIFF_PROGRESS_INTERVAL seconds
 *   (default 5) on stderr, and nothing for operations that finish sooner;
 * - ndjson: one JSON object a line on stderr, for programs that drive skiff (stdout keeps the
 *   command's own output, e.g. its --json report);
 * - none: nothing.
 */
import { Flags } from '@oclif/core';
import type { MirrorProgress } from '../mirror/progress.js';
import type { PullProgress } from '../pull/progress.js';
import { formatBytes, shortDigest } from '../util/present.js';

export const PROGRESS_MODES = ['auto', 'tty', 'plain', 'ndjson', 'none'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export const progressFlag = Flags.string({
  description:
    'auto: bars on a terminal, else a line every few seconds; tty; plain; ndjson: JSON events on stderr; none',
  options: [...PROGRESS_MODES],
  default: 'auto',
  env: 'SKIFF_PROGRESS',
});

export type Phase = 'start' | 'progress' | 'done' | 'failed';

/** One transfer being watched: a layer of a pull, an image of a mirror. */
export interface Operation {
  /** The image as the user wrote it (mirror: `SRC → DST`). */
  image: string;
  /** The layer's digest (pull); null for a whole image (mirror). */
  layer: string | null;
  method: string;
  bytesDone: number;
  /** 0 while unknown. */
  bytesTotal: number;
  phase: Phase;
}

/** A progress display; `write` puts the command's own output on the screen without tearing it. */
export interface ProgressView {
  update(op: Operation): void;
  write(stream: NodeJS.WriteStream, text: string): void;
  stop(): void;
}

type Concrete = Exclude<ProgressMode, 'auto'>;

/** auto: bars on a terminal that can move its cursor, unless --json asks for machine output. */
export function resolveMode(mode: string, options: { json?: boolean } = {}): Concrete {
  if (mode !== 'auto') return mode as Concrete;
  const tty = process.stderr.isTTY && process.env.TERM !== 'dumb';
  return tty && !options.json ? 'tty' : 'plain';
}

export function pullProgress(mode: Concrete, image: string): PullProgress & ProgressView {
  const view = makeView(mode, {
    header: `Pulling ${image}`,
    plainLabel: (op) => `pulling ${op.image}: layer ${shortDigest(op.layer ?? '')} (${op.method})`,
    ttyLine: (op, width) => {
      const head = ` ${shortDigest(op.layer ?? '')}  ${op.method.padEnd(7)} `;
      const tail = ` ${amount(op).padEnd(AMOUNT_WIDTH)}`;
      return `${head}${bar(op, width - head.length - tail.length)}${tail}`;
    },
  });
  const layers = new Map<number, Operation>();
  return {
    ...view,
    layerStart(index, digest, method, totalBytes) {
      const op: Operation = {
        image,
        layer: digest,
        method,
        bytesDone: 0,
        bytesTotal: Math.max(totalBytes, 0),
        phase: 'start',
      };
      layers.set(index, op);
      view.update(op);
    },
    layerBytes(index, bytes) {
      const op = layers.get(index);
      if (!op) return;
      op.bytesDone += bytes;
      // A fallback or a TOC can fetch more than planned: the total grows rather than overflowing.
      op.bytesTotal = Math.max(op.bytesTotal, op.bytesDone);
      op.phase = 'progress';
      view.update(op);
    },
    layerDone(index, ok) {
      const op = layers.get(index);
      if (!op) return;
      op.phase = ok ? 'done' : 'failed';
      view.update(op);
    },
  };
}

export function mirrorProgress(mode: Concrete): MirrorProgress & ProgressView {
  const view = makeView(mode, {
    // A finished image's bar gives way to its result line.
    dropFinished: true,
    plainLabel: (op) => `mirroring ${op.image}`,
    ttyLine: (op, width) => {
      // The bar narrows (down to 10) before the route is cut.
      const barWidth = width - AMOUNT_WIDTH - 5 - op.image.length;
      const head = ` ${bar(op, Math.max(12, Math.min(27, barWidth)))} ${amount(op).padEnd(AMOUNT_WIDTH)}  `;
      return `${head}${keepEnd(op.image, width - head.length)}`;
    },
  });
  const images = new Map<number, Operation>();
  const change = (id: number, apply: (op: Operation) => void) => {
    const op = images.get(id);
    if (!op) return;
    apply(op);
    view.update(op);
  };
  return {
    ...view,
    imageStart(id, label) {
      const op: Operation = {
        image: label,
        layer: null,
        method: 'copy',
        bytesDone: 0,
        bytesTotal: 0,
        phase: 'start',
      };
      images.set(id, op);
      view.update(op);
    },
    expect: (id, bytes) => change(id, (op) => (op.bytesTotal += Math.max(bytes, 0))),
    bytes: (id, bytes) =>
      change(id, (op) => {
        op.bytesDone += bytes;
        op.bytesTotal = Math.max(op.bytesTotal, op.bytesDone);
        op.phase = 'progress';
      }),
    imageDone: (id, ok) => change(id, (op) => (op.phase = ok ? 'done' : 'failed')),
  };
}

interface Renderers {
  header?: string;
  dropFinished?: boolean;
  plainLabel(op: Operation): string;
  ttyLine(op: Operation, width: number): string;
}

/** The view's methods as plain functions, to spread into the progress object a command gets. */
function makeView(mode: Concrete, renderers: Renderers): ProgressView {
  const view = viewFor(mode, renderers);
  return {
    update: (op) => view.update(op),
    write: (stream, text) => view.write(stream, text),
    stop: () => view.stop(),
  };
}

function viewFor(mode: Concrete, renderers: Renderers): ProgressView {
  switch (mode) {
    case 'tty':
      return new TtyView(renderers);
    case 'plain':
      return new PlainView(renderers.plainLabel);
    case 'ndjson':
      return new NdjsonView();
    case 'none':
      return { update() {}, write: (stream, text) => stream.write(text), stop() {} };
  }
}

/** `999.9 MB / 999.9 MB`: the bars keep their width as the numbers change. */
const AMOUNT_WIDTH = 19;

const finished = (op: Operation) => op.phase === 'done' || op.phase === 'failed';

function amount(op: Operation): string {
  if (op.phase === 'failed') return 'failed';
  if (op.bytesTotal === 0) return op.phase === 'done' ? 'done' : formatBytes(op.bytesDone);
  return `${formatBytes(op.bytesDone)} / ${formatBytes(op.bytesTotal)}`;
}

function bar(op: Operation, width: number): string {
  const inner = Math.max(5, Math.min(30, width - 2));
  const ratio = op.bytesTotal > 0 ? Math.min(1, op.bytesDone / op.bytesTotal) : finished(op) ? 1 : 0;
  const full = op.phase === 'done' ? inner : Math.floor(ratio * inner);
  return `[${'█'.repeat(full)}${'░'.repeat(inner - full)}]`;
}

/** The end of a long text, which is where references differ (`…/app:v2`). */
function keepEnd(text: string, width: number): string {
  if (width <= 1) return '';
  return text.length <= width ? text : `…${text.slice(text.length - width + 1)}`;
}

/**
 * A block of lines at the bottom of the terminal, redrawn in place: the cursor goes back up over
 * the lines drawn last time, each line is rewritten and cleared to its end, and anything below is
 * cleared. Lines never reach the last column, so the terminal never wraps them and the count of
 * lines to go back over stays true.
 */
class TtyView implements ProgressView {
  private readonly ops: Operation[] = [];
  private drawn = 0;
  private dirty = false;
  private stopped = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly renderers: Renderers) {
    // The header shows at once: resolving the manifest and fetching TOCs come before any bar.
    this.dirty = renderers.header !== undefined;
    this.timer = setInterval(() => this.dirty && this.draw(), 100);
    this.timer.unref();
  }

  update(op: Operation): void {
    if (this.stopped) return;
    const index = this.ops.indexOf(op);
    if (finished(op) && this.renderers.dropFinished) {
      if (index >= 0) this.ops.splice(index, 1);
    } else if (index < 0) this.ops.push(op);
    this.dirty = true;
  }

  write(stream: NodeJS.WriteStream, text: string): void {
    this.clear();
    stream.write(text);
    if (!this.stopped) this.draw();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.clear();
  }

  private lines(): string[] {
    const width = (process.stderr.columns || 80) - 1;
    const room = Math.max(2, (process.stderr.rows || 24) - 2);
    const header = this.renderers.header ? [keepEnd(this.renderers.header, width)] : [];
    let shown = this.ops;
    let more: string[] = [];
    if (header.length + shown.length > room) {
      const active = this.ops.filter((op) => !finished(op));
      shown = active.slice(0, room - header.length - 1);
      const done = this.ops.length - active.length;
      more = [keepEnd(` … ${this.ops.length - shown.length} more (${done} finished)`, width)];
    }
    return [...header, ...shown.map((op) => this.renderers.ttyLine(op, width).slice(0, width)), ...more];
  }

  private draw(): void {
    this.dirty = false;
    const lines = this.lines();
    const up = this.drawn > 0 ? `\r\x1b[${this.drawn}A` : '';
    process.stderr.write(`${up}${lines.map((line) => `${line}\x1b[K\n`).join('')}\x1b[J`);
    this.drawn = lines.length;
  }

  private clear(): void {
    if (this.drawn > 0) process.stderr.write(`\r\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }
}

/** For logs: a line per operation at most every interval; a last line only for those that had one. */
class PlainView implements ProgressView {
  private readonly intervalMs = intervalFromEnv();
  private readonly lastLine = new Map<Operation, number>();
  private readonly started = new Map<Operation, number>();

  constructor(private readonly label: (op: Operation) => string) {}

  update(op: Operation): void {
    const now = performance.now();
    if (op.phase === 'start') {
      this.started.set(op, now);
      this.lastLine.delete(op);
      return;
    }
    const last = this.lastLine.get(op) ?? this.started.get(op) ?? now;
    if (finished(op)) {
      if (this.lastLine.has(op))
        this.line(op, op.phase === 'done' ? `done, ${formatBytes(op.bytesDone)}` : 'failed');
      return;
    }
    if (now - last < this.intervalMs) return;
    const percent = op.bytesTotal > 0 ? ` (${Math.floor((100 * op.bytesDone) / op.bytesTotal)}%)` : '';
    this.line(op, `${amount(op)}${percent}`);
  }

  write(stream: NodeJS.WriteStream, text: string): void {
    stream.write(text);
  }

  stop(): void {}

  private line(op: Operation, what: string): void {
    this.lastLine.set(op, performance.now());
    process.stderr.write(`skiff: ${this.label(op)}: ${what}\n`);
  }
}

function intervalFromEnv(): number {
  const seconds = Number(process.env.SKIFF_PROGRESS_INTERVAL ?? 5);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 5000;
}

/** Every start, end and failure, and progress at most 4 times a second per operation. */
class NdjsonView implements ProgressView {
  private readonly lastProgress = new Map<Operation, number>();

  update(op: Operation): void {
    if (op.phase === 'progress') {
      const now = performance.now();
      if (now - (this.lastProgress.get(op) ?? 0) < 250) return;
      this.lastProgress.set(op, now);
    }
    const { image, layer, method, bytesDone, bytesTotal, phase } = op;
    process.stderr.write(
      `${JSON.stringify({ type: 'progress', image, layer, method, phase, bytesDone, bytesTotal })}\n`,
    );
  }

  write(stream: NodeJS.WriteStream, text: string): void {
    stream.write(text);
  }

  stop(): void {}
}
