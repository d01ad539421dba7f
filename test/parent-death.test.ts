/**
 * A signal sent only to the parent of a processes backend (not to its
 * process group): the busy child workers finish their current task, find the
 * parent gone and exit quietly, without "Unhandled 'error' event ... EPIPE".
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { childPids, isAlive, waitFor } from './fixtures/parallel-helpers.js';
import { repoRoot } from './helpers.js';

const script = fileURLToPath(new URL('./fixtures/busy-parent.ts', import.meta.url));

describe('children of a parent that is gone', () => {
  for (const signal of ['SIGKILL', 'SIGINT', 'SIGTERM'] as const) {
    it(`${signal} to the parent alone: busy workers exit quietly once their task ends`, async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      // The workers inherit the parent's stderr: whatever they print after it died lands here too.
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<void>((resolve) => child.stderr.on('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve();
        });
        child.on('exit', () => reject(new Error(`the parent exited before its workers were busy: ${out} ${stderr}`)));
      });
      const workers = childPids(child.pid);
      expect(workers.length).toBe(2);
      child.kill(signal);
      // Each worker has up to two 0.8 s tasks queued; then it notices the parent is gone.
      await waitFor(() => workers.every((pid) => !isAlive(pid)), 15_000, 'the orphaned workers to exit');
      await closed; // every holder of the stderr pipe has gone: nothing more can be written
      expect(stderr).not.toMatch(/EPIPE|Unhandled 'error' event/);
      expect(stderr).toBe('');
    });
  }
});
