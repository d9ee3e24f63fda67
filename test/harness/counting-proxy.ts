// The counting proxy lives in scripts/lib (the benchmarks use it too).
export {
  type CountingProxy,
  type RecordedRequest,
  startCountingProxy,
} from '../../scripts/lib/counting-proxy.mjs';
