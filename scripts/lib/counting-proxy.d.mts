export interface RecordedRequest {
  method: string;
  path: string;
  status: number;
  /** Body bytes the registry answered with. */
  bytes: number;
}
export interface BlobEvent {
  path: string;
  bytes: number;
  end?: true;
}
export interface CountingProxy {
  /** host:port to use instead of the registry's. */
  host: string;
  requests: RecordedRequest[];
  reset(): void;
  /** GETs of blob contents (`/v2/<name>/blobs/sha256:...`). */
  blobGets(): RecordedRequest[];
  /** Body bytes of all blob GETs (ranges included). */
  blobBytes(): number;
  /** Requests that carry or start blob uploads (POST/PATCH/PUT under `/blobs/uploads/`). */
  uploads(): RecordedRequest[];
  manifestPuts(): RecordedRequest[];
  /** The most requests in flight at once (arrived, answer not yet sent whole) since start or reset. */
  maxInFlight(): number;
  /** Client connections opened since start or reset. */
  connections(): number;
  /** Blob GET answers' body chunks in the order they passed; `end` marks an answer sent whole. */
  blobEvents(): BlobEvent[];
  /** The next request matching `match` has its connection dropped before it reaches the registry. */
  dropNext(match: (method: string, path: string) => boolean): void;
  stop(): Promise<void>;
}
export function startCountingProxy(target: string): Promise<CountingProxy>;
