/**
 * The main thread's side of a worker thread fed with batches: its messages, its first failure
 * (a message, an error, or an exit nobody asked for), waiting for a condition the messages make
 * true, and ending it. Shared by the zstd:chunked blob writer and the partial pull's rebuild hasher.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `M`: the messages the worker's own source posts (internal, so not validated). */
export class WorkerHandle<M> {
  private readonly worker: Worker;
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];
  private stopped = false;

  /**
   * `onMessage` handles each message; what it throws becomes the handle's failure (thrown in an
   * event handler it would be uncaught). `what` names the worker in the error for an early exit.
   */
  constructor(source: string, options: WorkerOptions, onMessage: (message: M) => void, what: string) {
    this.worker = new Worker(source, { ...options, eval: true });
    this.worker.on('message', (message: M) => {
      try {
        onMessage(message);
      } catch (error) {
        this.fail(error as Error);
      }
      this.wake();
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', () => this.fail(new Error(`${what} exited`)));
  }

  post(message: unknown, transfer: readonly ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** Waits for messages until `done()` holds; throws the worker's failure instead, if any. */
  async until(done: () => boolean): Promise<void> {
    while (!done() && !this.failure) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.check();
  }

  /** Throws the worker's failure, if it has one. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  /** Ends the worker; false if it was ended before (so the caller releases its files once). */
  async stop(): Promise<boolean> {
    if (this.stopped) return false;
    this.stopped = true;
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
    return true;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
