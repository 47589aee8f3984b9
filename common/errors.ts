/** Failure chains (ActivityFailure → ApplicationFailure, WorkflowFailedError → …): what people should read. */

/** The innermost message of a failure chain: the activity's own words, not "Activity task failed". */
export function rootMessage(err: unknown): string {
  let e = err as { cause?: unknown; message?: unknown } | undefined;
  while (e && typeof e === 'object' && e.cause) e = e.cause as typeof e;
  return e && typeof e === 'object' && typeof e.message === 'string' ? e.message : String(err);
}
