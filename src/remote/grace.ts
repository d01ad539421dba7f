/**
 * Closing what talks to a broker. With the broker gone, a graceful close
 * (or any command) waits for it to come back, for ever: commands queue while
 * ioredis reconnects. A close must end, so each step gets a bounded wait.
 */
export const CLOSE_GRACE_MS = 1_000;

/** Waits for `step` (its failure ignored), at most `ms`. */
export async function withGrace(step: Promise<unknown> | undefined, ms = CLOSE_GRACE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([step?.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
