/**
 * The temp folders of one run. Usually there is one, under the root
 * chooseTempRoot picks. When a dump finds no space there (ENOSPC), the run
 * moves on to a folder under the next usable candidate root, and when none
 * is left it fails with a MemjobError that says what was tried and what to
 * do. All of them are removed together when the run ends.
 */
import { sep } from 'node:path';
import { ErrorCodes, MemjobError } from '../errors.js';
import { createRunFolder, type RunFolder } from './temp-folder.js';
import { chooseTempRoot, tempRootCandidates } from './temp-root.js';

/** True for the errors that mean "this file system is full". */
export function isNoSpace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export class RunFolders {
  readonly #option: string | undefined;
  readonly #folders: RunFolder[] = [];

  /** `option` is Parallel's tempFolder option (undefined: MEMJOB_TEMP_FOLDER, /dev/shm, os.tmpdir()). */
  constructor(option: string | undefined) {
    this.#option = option;
  }

  /** The folder new files go to, created on first use under the first root with room for `neededBytes`. */
  current(neededBytes = 0): RunFolder {
    const last = this.#folders.at(-1);
    if (last !== undefined) return last;
    return this.#add(chooseTempRoot(this.#option, neededBytes).root);
  }

  /**
   * `failed` had no room for a file of `neededBytes`: a folder under the
   * next usable root not tried yet. Throws MemjobError ENOSPC when there is
   * none (an explicit tempFolder or MEMJOB_TEMP_FOLDER is the only candidate).
   */
  fallback(failed: RunFolder, neededBytes: number, cause: unknown): RunFolder {
    const tried = new Set(this.#folders.map((folder) => folder.root));
    tried.add(failed.root);
    const next = tempRootCandidates(this.#option, neededBytes).find((candidate) => candidate.usable && !tried.has(candidate.root));
    if (next !== undefined) return this.#add(next.root);
    const roots = [...tried].join(', ');
    throw new MemjobError(
      ErrorCodes.NO_SPACE,
      `Parallel: no space left to dump an array of ${neededBytes} bytes for the workers (tried ${roots}). ` +
        'Free some space there, point the tempFolder option or MEMJOB_TEMP_FOLDER at a folder with room, ' +
        'or set maxNbytes: null to send arrays by copy instead',
      { cause, path: failed.path },
    );
  }

  /** Whether `path` is inside one of these folders (a file the run owns and will remove). */
  owns(path: string): boolean {
    return this.#folders.some((folder) => path.startsWith(folder.path + sep));
  }

  /** Removes every folder; idempotent; never throws. */
  remove(): void {
    for (const folder of this.#folders) folder.remove();
  }

  #add(root: string): RunFolder {
    const folder = createRunFolder(root);
    this.#folders.push(folder);
    return folder;
  }
}
