/**
 * `memjob clean`: removes the run folders (`memjob_<pid>_<hex>`) that dead
 * runs left in the temp roots memjob would use. The removal itself is
 * transport's reapStaleFolders, the same code every memjob process runs
 * before it makes a run folder: a folder goes only when its `.lock` can be
 * locked (no live run, in any PID namespace, holds it) and it is older than
 * a minute, so it never touches this process's folders, live runs' folders,
 * other users' folders, symlinks or other names. `--dry-run` lists what it
 * would remove with the same rules (the same scan reapStaleFolders uses).
 */
import { reapStaleFolders, scanRunFolders } from '../transport/temp-reap.js';
import { chooseTempRoot, tempRootCandidates } from '../transport/temp-root.js';
import { print, printJson } from './output.js';

export interface CleanReport {
  dryRun: boolean;
  roots: string[];
  /** Removed, or with dryRun the folders that would be. */
  removed: string[];
  /** Run folders of live processes, left alone. */
  kept: string[];
}

/**
 * The roots to clean: those memjob would consider now (the option, else
 * MEMJOB_TEMP_FOLDER, else /dev/shm and os.tmpdir()). An explicit root that
 * cannot be used (missing, not a folder, not writable, unsafe) is the error
 * a run would get, so the command exits 1 instead of cleaning nothing.
 */
export function cleanRoots(tempFolder?: string): string[] {
  const candidates = tempRootCandidates(tempFolder);
  if (candidates.some((c) => (c.source === 'option' || c.source === 'env') && !c.usable)) chooseTempRoot(tempFolder);
  return [...new Set(candidates.map((c) => c.root))];
}

export function clean(options: { dryRun?: boolean; tempFolder?: string }): CleanReport {
  const dryRun = options.dryRun === true;
  const roots = cleanRoots(options.tempFolder);
  const report: CleanReport = { dryRun, roots, removed: [], kept: [] };
  for (const root of roots) {
    const scan = scanRunFolders(root);
    report.removed.push(...(dryRun ? scan.stale : reapStaleFolders(root).sort()));
    // A folder listed stale may have been reaped by someone else meanwhile; live ones stay live.
    report.kept.push(...scan.live);
  }
  return report;
}

export function runClean(options: { dryRun?: boolean; json?: boolean; tempFolder?: string }): void {
  const report = clean(options);
  if (options.json === true) {
    printJson(report);
    return;
  }
  const verb = report.dryRun ? 'would remove' : 'removed';
  const lines = report.removed.map((path) => `${verb} ${path}`);
  const n = report.removed.length;
  const folders = `${n} stale folder${n === 1 ? '' : 's'}`;
  lines.push(
    `${report.dryRun ? `${folders} would be removed` : `${folders} removed`} from ${report.roots.join(', ')}; ` +
      `${report.kept.length} folder${report.kept.length === 1 ? '' : 's'} of live processes kept`,
  );
  print(lines);
}
