/**
 * Every kind of shared object, loaded together so that a thread can revive
 * any of them: each module registers its reviver with transport's
 * shared-object kind when it loads. The worker entry imports this module;
 * transport never does (it sits below multiprocessing).
 */
import './lock.js';
import './values.js';
import './queue.js';
