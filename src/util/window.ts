/**
 * A bounded window of concurrent async tasks with backpressure: `add` waits while the window is
 * full, so a fast producer (a tar stream) cannot queue unbounded work (and memory) behind a slow
 * consumer (the disk). The first failure is re-thrown by the next `add` or by `drain`.
 */
export class TaskWindow {
  private readonly active = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  /**
   * Starts the task when the window has room and returns nothing; otherwise returns a promise that
   * starts it once a slot frees up. (No promise in the common case: callers feeding thousands of
   * small files should not pay a microtask each.)
   */
  add(task: () => Promise<void>): Promise<void> | undefined {
    this.throwIfFailed();
    if (this.active.size >= this.limit) return this.addWhenFree(task);
    this.start(task);
    return undefined;
  }

  private async addWhenFree(task: () => Promise<void>): Promise<void> {
    while (this.active.size >= this.limit) {
      await Promise.race(this.active);
      this.throwIfFailed();
    }
    this.start(task);
  }

  private start(task: () => Promise<void>): void {
    const running: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.active.delete(running));
    this.active.add(running);
  }

  async drain(): Promise<void> {
    while (this.active.size > 0) await Promise.race(this.active);
    this.throwIfFailed();
  }

  /** Waits for running tasks without reporting their errors (for cleanup after another failure). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.active]);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}
