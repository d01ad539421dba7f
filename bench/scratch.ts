/**
 * Scratch folders for one benchmark run: made 0700 (mkdtemp) and removed
 * however the run ends: in `finally` on success and errors, and from a
 * SIGINT/SIGTERM handler, which then exits as the signal would (130, 143).
 * `onStop` runs first either way (to stop a running python, say).
 */
import { mkdtempSync, rmSync } from 'node:fs';

export async function withScratch<T>(run: (folder: (prefix: string) => string) => Promise<T>, onStop: () => void = () => undefined): Promise<T> {
  const folders: string[] = [];
  const cleanup = () => {
    onStop();
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.stderr.write(`\nbench: ${signal}, scratch files removed\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run((prefix) => {
      const folder = mkdtempSync(prefix);
      folders.push(folder);
      return folder;
    });
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
