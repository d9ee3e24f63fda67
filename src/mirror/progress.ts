/** Progress events of a mirror run, for progress bars (the CLI) or nothing (the library default). */
export interface MirrorProgress {
  imageStart(id: number, label: string): void;
  /** A blob transfer of `bytes` began: the image's total grows by that much. */
  expect(id: number, bytes: number): void;
  /** Bytes written to the destination. */
  bytes(id: number, bytes: number): void;
  imageDone(id: number, ok: boolean): void;
}

export const SILENT_MIRROR_PROGRESS: MirrorProgress = {
  imageStart() {},
  expect() {},
  bytes() {},
  imageDone() {},
};
