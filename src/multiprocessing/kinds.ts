/**
 * Every kind of shared object, loaded together so that a worker can revive
 * any of them (each module registers its reviver when it loads). The
 * transport layer imports packShared/reviveShared from here.
 */
import './lock.js';
import './values.js';
import './queue.js';

export { packShared, reviveShared, type SharedRef } from './shared-ref.js';
