// The progress bar as a terminal shows it: `script` gives the program a real
// pseudo-terminal, so the bar is drawn exactly as for a user.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
const fixture = fileURLToPath(new URL('./fixtures/progress-bar.ts', import.meta.url));

/** The frames the bar drew, without terminal control sequences. */
function frames(mode: 'array' | 'generator'): string[] {
  const command = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(fixture)} ${mode}`;
  const run = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  expect(run.status).toBe(0);
  expect(run.stdout).toContain('results [0,1,4,9,16,25,36,49,64,81]');
  // cli-progress starts each frame by moving to column 1 (ESC [1G).
  return run.stdout
    .split('\x1b[1G')
    .slice(1)
    .map((frame) => frame.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '').split('\r')[0]!.trim());
}

describe.skipIf(!hasScript)('the progress bar on a terminal', () => {
  it('before the total is known, counts tasks without a percentage; never shows 0/0', () => {
    const drawn = frames('generator');
    expect(drawn[0]).toMatch(/^0 tasks done \| 0s elapsed$/);
    for (const frame of drawn.slice(0, -1)) expect(frame).toMatch(/^\d+ tasks done \| \d+s elapsed$/);
    expect(drawn.at(-1)).toMatch(/ 100% \| 10\/10 tasks \| \d+s elapsed, ETA 0s$/);
    expect(drawn.join('\n')).not.toContain('0/0');
  });

  it('with an array, the total is known from the first frame', () => {
    const drawn = frames('array');
    expect(drawn[0]).toMatch(/ 0% \| 0\/10 tasks \| 0s elapsed/);
    for (const frame of drawn) expect(frame).toMatch(/ \d+% \| \d+\/10 tasks \|/);
    expect(drawn.at(-1)).toMatch(/ 100% \| 10\/10 tasks \| \d+s elapsed, ETA 0s$/);
  });
});
