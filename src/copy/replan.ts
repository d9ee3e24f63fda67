/**
 * The engine's re-plan loop: a layer is attempted with the strategy module's decision; when the
 * attempt reveals a run-time fact (RuntimeFactError: the source ignored Range, a TOC did not
 * verify, a rebuilt tar did not hash to its DiffID), the fact is added to the layer's facts and
 * the strategy module decides again. Bounded: every fact can change the plan once, so a layer that
 * keeps producing facts is a bug in an executor or a source, not a reason to loop forever.
 */
import type { RuntimeFacts } from '../strategy/index.js';

/** A run-time fact for the strategy module; the engine re-plans the layer with it. */
export class RuntimeFactError extends Error {
  constructor(
    readonly fact: RuntimeFacts,
    message: string,
  ) {
    super(message);
  }
}

/** Re-plans allowed per layer: one per kind of run-time fact. */
export const MAX_REPLANS = 4;

/** A layer whose facts never settled: a bug, reported as an internal error (exit 1) naming the layer. */
export class ReplanLimitError extends Error {}

export interface ReplanSteps<D, R> {
  /** Carries out one decision; throws RuntimeFactError for a fact the strategy must hear. */
  attempt(decision: D): Promise<R>;
  /** Takes the fact back to the strategy module: the next decision (or throws a violation). */
  replan(fact: RuntimeFacts): D;
  /** Names the layer in the error of a loop that did not settle. */
  what: string;
}

export async function runWithReplans<D, R>(first: D, steps: ReplanSteps<D, R>): Promise<R> {
  let decision = first;
  const seen: string[] = [];
  for (let replans = 0; ; replans++) {
    try {
      return await steps.attempt(decision);
    } catch (error) {
      if (!(error instanceof RuntimeFactError)) throw error;
      seen.push(...Object.keys(error.fact));
      if (replans >= MAX_REPLANS) {
        throw new ReplanLimitError(
          `${steps.what}: re-planned ${replans} times without settling (run-time facts: ${seen.join(', ')}); this is a bug`,
        );
      }
      decision = steps.replan(error.fact);
    }
  }
}
